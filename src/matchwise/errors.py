"""A small error hierarchy; the API maps each class to one HTTP status in one place."""

from __future__ import annotations


class MatchwiseError(Exception):
    """Base class for every error matchwise raises on purpose."""

    status_code = 500


class InvalidInput(MatchwiseError):
    """The caller sent something matchwise cannot accept (HTTP 422, CLI exit 2)."""

    status_code = 422


class BatchTooLarge(InvalidInput):
    """A batch holds more entries than ``max_batch_size`` (HTTP 413)."""

    status_code = 413


class MalformedBody(MatchwiseError):
    """A request body that cannot be read as JSON (HTTP 400)."""

    status_code = 400


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
    """The database cannot be reached or is too busy; the request may simply be retried
    (HTTP 503 with ``Retry-After``)."""

    status_code = 503
    retry_after_seconds = 1
