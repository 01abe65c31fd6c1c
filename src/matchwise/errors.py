"""A small error hierarchy; the API maps each class to one HTTP status in one place."""

from __future__ import annotations


class MatchwiseError(Exception):
    """Base class for every error matchwise raises on purpose."""

    status_code = 500


class InvalidInput(MatchwiseError):
    """The caller sent something matchwise cannot accept (HTTP 422, CLI exit 2)."""

    status_code = 422


class NotFound(MatchwiseError):
    """A user, item, model or job the caller named does not exist (HTTP 404)."""

    status_code = 404


class Conflict(MatchwiseError):
    """The request conflicts with what is stored (HTTP 409)."""

    status_code = 409


class NotFitted(MatchwiseError):
    """A model was asked to score before it was trained or loaded."""

    status_code = 409


class ArtifactError(MatchwiseError):
    """A model artifact is missing or corrupt; the caller keeps the previous version."""

    status_code = 500


class ConfigError(MatchwiseError):
    """Settings or a config file are wrong; raised at start, naming the setting."""

    status_code = 500


class StoreUnavailable(MatchwiseError):
    """The database cannot be reached."""

    status_code = 503
