"""HTTP API: FastAPI routes as thin shells over recommend, ingest and registry."""

from matchwise.api.app import create_app

__all__ = ["create_app"]
