"""One place that hides secrets in what people and logs see: the password in a URL (the
store's, Redis's) wherever it appears in a text. Every message, log line and printed
setting that may hold a URL goes through :func:`redact`."""

from __future__ import annotations

import logging
import re

_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^@\s'\"]*@")


def redact(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` written ``scheme://user:***@``."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message of every record, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logs(*logger_names: str) -> None:
    """Put :class:`RedactingFilter` on the handlers of the root logger and of ``names``
    (uvicorn's loggers have handlers of their own)."""
    for name in ("", *logger_names):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
