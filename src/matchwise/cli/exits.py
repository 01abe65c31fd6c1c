"""The CLI's exit codes, one meaning each, so that a script can tell a refusal from a
failure; README's "Exit codes" table lists them."""

from __future__ import annotations

from enum import IntEnum

from pydantic import ValidationError

from matchwise.errors import InvalidInput, MatchwiseError, NotFound


class ExitCode(IntEnum):
    OK = 0
    #: The command could not do its job: configuration, the store, model files, a job.
    FAILED = 1
    #: Usage or input: an unknown command or option, a bad value, an unknown id, a bad file.
    BAD_INPUT = 2
    #: ``serve`` cannot listen on the host and port it was given.
    ADDRESS_UNAVAILABLE = 3


class AddressUnavailable(MatchwiseError):
    """``serve`` was given a host and port it cannot listen on (in use, not this machine's,
    or privileged)."""


def exit_code(exc: BaseException) -> ExitCode | None:
    """The exit code of an error the CLI reports in one line; None for anything else (a
    bug: it keeps its traceback)."""
    if isinstance(exc, AddressUnavailable):
        return ExitCode.ADDRESS_UNAVAILABLE
    if isinstance(exc, InvalidInput | NotFound | ValidationError):
        return ExitCode.BAD_INPUT
    if isinstance(exc, MatchwiseError):
        return ExitCode.FAILED
    return None
