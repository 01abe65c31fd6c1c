"""The running experiments are read again every ``check_seconds``; a copy that lapsed
moments ago is answered while one background thread reads them, so no request waits for
that read (on a busy server such a read in a worker thread took 15-74 ms, waiting for
the GIL after each round trip). Older than twice that, the copy is not trusted: the
caller reads the store itself. Both stores."""

from __future__ import annotations

import threading
import time
from typing import Any

from matchwise.runtime import Runtime
from matchwise.serve.experiments import ExperimentBook
from tests.utils.held_statements import HeldStatements


def held_reads(engine: Any) -> HeldStatements:
    """Every read of ``experiments`` on ``engine``, each held until released."""
    return HeldStatements(engine, lambda statement: "FROM experiments" in statement)


def test_a_lapsed_copy_is_answered_while_one_background_read_runs(runtime: Runtime) -> None:
    engine = runtime.read_engine
    book = ExperimentBook(check_seconds=0.3)
    assert book.load(engine) == ()
    time.sleep(0.35)  # lapsed, but less than check_seconds ago
    assert book.fresh() is None
    with held_reads(engine) as reads:
        began = time.monotonic()
        answers = [book.current(engine) for _ in range(20)]
        assert book.load(engine) == ()  # the sync callers' road: the copy too
        waited = time.monotonic() - began
        assert reads.started.wait(timeout=5), "no background read began"
        assert answers == [()] * 20
        assert waited < 0.2, f"the callers waited {waited:.2f} s for the read"
        reads.release()
        deadline = time.monotonic() + 5
        while book.fresh() is None:
            assert time.monotonic() < deadline, "the background read never landed"
            time.sleep(0.01)
    assert reads.threads == ["matchwise-experiments"], reads.threads  # one read, not 21


def test_a_copy_older_than_twice_the_interval_is_read_again_by_the_caller(
    runtime: Runtime,
) -> None:
    engine = runtime.read_engine
    book = ExperimentBook(check_seconds=0.1)
    assert book.load(engine) == ()
    time.sleep(0.25)
    assert book.current(engine) is None
    with held_reads(engine) as reads:
        reads.release()
        assert book.load(engine) == ()
    assert reads.threads == [threading.current_thread().name]
    assert book.fresh() == ()
