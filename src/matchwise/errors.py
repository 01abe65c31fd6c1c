"""A small error hierarchy; the API maps each class to one HTTP status in one place."""

from __future__ import annotations


class MatchwiseError(Exception):
    """Base class for every error matchwise raises on purpose.

    A client error's message is for the caller (it says what to change). A server error's
    message may hold internals (paths, hosts), so callers get ``public`` instead, which
    says what failed in their terms; the message goes to the log.
    """

    status_code = 500
    public = "internal server error"

    def client_message(self) -> str:
        return str(self) if self.status_code < 500 else self.public


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
    public = "a model or its files could not be loaded"


class ConfigError(MatchwiseError):
    """Settings or a config file are wrong; raised at start, naming the setting."""

    status_code = 500
    public = "the server's configuration does not allow this"


class StoreUnavailable(MatchwiseError):
    """The database cannot be reached or is too busy; the request may simply be retried
    (HTTP 503 with ``Retry-After``)."""

    status_code = 503
    retry_after_seconds = 1
    public = "the store is busy or unreachable; retry shortly"

    def __init__(self, message: str, *, public: bool = False) -> None:
        super().__init__(message)
        if public:  # a message written for callers (see db.engine.store_error)
            self.public = message
