"""Gorse's REST API (v0.5) under ``/api``, beside matchwise's own ``/v1``."""

from matchwise.api.gorse.routes import router

__all__ = ["router"]
