"""Experiments over HTTP, as an operator and an app use them: create, serve, send events
back (echoing the arm, only a model version, or nothing), watch the statistics, promote;
bad requests are 4xx saying what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.client import MatchwiseAPIError, MatchwiseClient
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.experiments import Versions, open_runtime, seed_store, simulate


@pytest.fixture
def setup(db_url: str, tmp_path: Path) -> Iterator[tuple[MatchwiseClient, Runtime, Versions]]:
    runtime = open_runtime(db_url, tmp_path)
    versions = seed_store(runtime)
    with runtime.session() as session:
        key, _ = create_key(session, "admin", name="tests")
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as http:
        yield MatchwiseClient(api_key=key, http=http), runtime, versions
    runtime.close()


def _arms(versions: Versions) -> list[dict[str, object]]:
    return [{"name": "control"}, {"name": "treat", "model_version": versions.other}]


def test_create_serve_measure_promote(setup: tuple[MatchwiseClient, Runtime, Versions]) -> None:
    api, runtime, versions = setup
    # judged by clicks: the outcome (conversion) is a click, as for a feed of items
    created = api.create_experiment(
        {"name": "lift", "arms": _arms(versions), "outcome_actions": ["click"], "salt": "lift-1"}
    )
    assert created.status == "running" and [a.name for a in created.arms] == ["control", "treat"]
    served = {}
    for i in range(150):
        answer = api.recommendations(f"u{i}", limit=5, kind="item")
        assert answer.experiment == "lift" and answer.arm in ("control", "treat")
        served[f"u{i}"] = ([r.candidate_id for r in answer.recommendations], answer.experiment,
                           answer.arm)  # fmt: skip
    # a planted lift: the treatment's lists are clicked four times as often
    simulate(runtime, served, {"control": 0.1, "treat": 0.4}, seed=1, echo="mixed")
    report = api.experiment("lift")
    by_arm = {a.arm: a for a in report.arms}
    shown = [arm for ids, _, arm in served.values() if ids]  # users with an impression
    assert by_arm["control"].users + by_arm["treat"].users == len(shown)
    assert by_arm["treat"].users == shown.count("treat")
    ctr = {a: by_arm[a].metrics["ctr"] for a in by_arm}
    assert ctr["treat"].value > ctr["control"].value  # type: ignore[union-attr]
    assert report.primary_metric == "conversion"
    assert by_arm["treat"].metrics["conversion"] == ctr["treat"]  # clicks are the outcome
    [vs] = [c for c in report.comparisons if c.metric == "conversion"]
    assert vs.arm == "treat" and vs.difference > 0 and vs.ci_low > 0 and vs.p_value < 0.001
    assert vs.sequential_ci_low <= vs.ci_low and vs.sequential_p_value >= vs.p_value
    assert report.sample_ratio is not None and not report.sample_ratio.flagged
    assert report.arm_mismatches == 0 and report.users_needed_per_arm is not None
    promoted = api.promote_experiment("lift")  # no arm named: the significant winner
    assert promoted.arm == "treat" and promoted.activated == versions.other
    assert api.experiments(status="promoted")[0].name == "lift"
    after = api.recommendations("u1", limit=5, kind="item", fresh=True)
    assert after.experiment is None
    assert after.model_version in (versions.other, "heuristic")  # the default is now the arm


def test_an_echoed_arm_that_disagrees_is_counted(
    setup: tuple[MatchwiseClient, Runtime, Versions],
) -> None:
    api, runtime, versions = setup
    api.create_experiment({"name": "echo", "arms": _arms(versions)})
    answer = api.recommendations("u3", limit=3, kind="item")
    wrong = "treat" if answer.arm == "control" else "control"
    ids = [r.candidate_id for r in answer.recommendations]
    simulate(runtime, {"u3": (ids, "echo", wrong)}, {}, echo="mixed")  # u3 echoes (style 0)
    assert api.experiment("echo").arm_mismatches == 1


def _error(call: object) -> MatchwiseAPIError:
    """The error a client call raised."""
    with pytest.raises(MatchwiseAPIError) as raised:
        call()  # type: ignore[operator]
    return raised.value


def test_bad_requests_say_what_is_wrong(setup: tuple[MatchwiseClient, Runtime, Versions]) -> None:
    api, _, versions = setup

    def create(*arms: dict[str, object]) -> None:
        api.create_experiment({"name": "x", "arms": list(arms)})

    dup = _error(lambda: create({"name": "a"}, {"name": "a"}))
    assert dup.status_code == 422 and "unique" in str(dup)
    zero = _error(lambda: create({"name": "a"}, {"name": "b", "weight": 0}))
    assert zero.status_code == 422 and "weight" in str(zero)
    unknown = _error(lambda: create({"name": "a"}, {"name": "b", "model_version": "ease-0"}))
    assert unknown.status_code == 422 and "no model version 'ease-0'" in str(unknown)
    api.create_experiment({"name": "x", "arms": _arms(versions)})
    again = _error(lambda: api.create_experiment({"name": "x", "arms": _arms(versions)}))
    assert again.status_code == 409 and "exists" in str(again)
    assert _error(lambda: api.experiment("nope")).status_code == 404
    api.stop_experiment("x")
    stopped = _error(lambda: api.stop_experiment("x"))
    assert stopped.status_code == 409 and "stopped, not running" in str(stopped)
    no_winner = _error(lambda: api.promote_experiment("x"))
    assert no_winner.status_code == 409 and "no arm beats 'control'" in str(no_winner)
    no_arm = _error(lambda: api.promote_experiment("x", "nope"))
    assert no_arm.status_code == 422 and "no arm 'nope'" in str(no_arm)
