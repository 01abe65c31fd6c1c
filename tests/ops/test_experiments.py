"""Experiments wired into serving: the same arm for a user in every process and on every
tier (Redis, database cache, live), promoting an arm changes what serves and is in the
audit log, promote refuses a broken split, interleaving records and credits its teams."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from matchwise.api import create_app
from matchwise.db.audit import recent
from matchwise.db.tables import Experiment, ExperimentTeam, Item
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.errors import Conflict, InvalidInput
from matchwise.experiments.assignment import assign_arm
from matchwise.ingest.events import store_events
from matchwise.ingest.profiles import store_users
from matchwise.ops import experiments
from matchwise.ops.auth import create_key
from matchwise.ops.privacy import erase_user
from matchwise.registry import ArtifactStore, active_version
from matchwise.runtime import Runtime
from matchwise.schemas import ExperimentIn, ExperimentOut, ImpressionEvent, InteractionIn
from matchwise.serve.experiments import experiment_book
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import reset_serving_state, serving_state, warm_up
from matchwise.serve.types import RecommendationList
from matchwise.settings import Settings
from tests.utils.experiments import Versions, ab_spec, open_runtime, seed_store, simulate
from tests.utils.factories import people_fixture

USERS = [f"u{i}" for i in range(60)]


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Versions]]:
    runtime = open_runtime(db_url, tmp_path)
    versions = seed_store(runtime)
    yield runtime, versions
    runtime.close()


def _create(runtime: Runtime, spec: ExperimentIn) -> ExperimentOut:
    with runtime.session() as session:
        created = experiments.create(session, runtime.settings, spec, "tests")
    experiment_book(runtime).invalidate()
    return created


def _serve(runtime: Runtime, user: str, **kw: object) -> RecommendationList:
    with runtime.read_session() as session:
        return recommend(runtime, session, user, limit=5, kind="item", **kw)  # type: ignore[arg-type]


def _arm(exp: ExperimentOut, user: str) -> str | None:
    return assign_arm(exp.salt, user, [(a.name, a.weight) for a in exp.arms], exp.coverage)


def test_a_user_gets_one_arm_in_every_process_and_on_every_tier(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    with_redis = open_runtime(db_url, tmp_path, redis_url)  # one host, with Redis
    plain = open_runtime(db_url, tmp_path)  # another, on the database cache alone
    try:
        versions = seed_store(with_redis)
        exp = _create(with_redis, ab_spec("split", versions, coverage=0.8))
        refresh_users(with_redis)  # the default lists: into the database and Redis
        with runtime_client(with_redis) as redis_http, runtime_client(plain) as db_http:
            seen: dict[str, set[str]] = {"treat": set(), "control": set()}
            for user in USERS:
                expected = _arm(exp, user)
                answers = [
                    get(redis_http, user),  # Redis
                    get(db_http, user),  # the database cache
                    get(db_http, user, fresh="true"),  # live
                    _wire(_serve(plain, user)),  # the library call the CLI makes
                ]
                assert {a["arm"] for a in answers} == {expected}, user
                assert {a["experiment"] for a in answers} == {None if expected is None else "split"}
                versions_served = {a["model_version"] for a in answers}
                if expected == "treat":  # scored live by the arm's model on every tier
                    assert all(a["route"] != "cache" for a in answers)
                    assert versions.active not in versions_served
                    seen["treat"] |= versions_served
                else:  # the control and users outside: the caches answer, the default model
                    assert answers[0]["route"] == answers[1]["route"] == "cache"
                    assert versions.other not in versions_served
                    seen["control"] |= versions_served
            assert versions.other in seen["treat"] and versions.active in seen["control"]
            # the database cache gone: Redis alone still answers the same arms
            with with_redis.session() as session:
                session.execute(delete(CachedRow))
            for user in USERS[:20]:
                answer = get(redis_http, user)
                assert answer["arm"] == _arm(exp, user)
                if answer["arm"] != "treat":
                    assert answer["route"] == "cache"
    finally:
        with_redis.close()
        plain.close()


def runtime_client(runtime: Runtime) -> TestClient:
    with runtime.session() as session:
        key, _ = create_key(session, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def get(client: TestClient, user: str, **params: str) -> dict[str, object]:
    answer = client.get("/v1/recommendations", params={"user_id": user, "limit": 5, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def _wire(result: RecommendationList) -> dict[str, object]:
    return {"arm": result.arm, "experiment": result.experiment, "route": result.route,
            "model_version": result.model_version}  # fmt: skip


def _warm_user_in(runtime: Runtime, exp: ExperimentOut, arm: str) -> str:
    for i in range(150):
        user = f"u{i}"
        if _arm(exp, user) == arm and _serve(runtime, user, use_cache=False).route != "cold":
            return user
    raise AssertionError(f"no warm user in arm {arm}")


def test_promoting_an_arm_changes_what_serves_and_is_audited(
    store: tuple[Runtime, Versions],
) -> None:
    runtime, versions = store
    exp = _create(runtime, ab_spec("promote-me", versions))
    user = _warm_user_in(runtime, exp, "control")
    before = _serve(runtime, user, use_cache=False)
    assert (before.model_version, before.arm) == (versions.active, "control")
    with runtime.session() as session:
        promoted = experiments.promote(session, ArtifactStore(runtime.settings.artifact_root),
                                       "promote-me", "treat", "tests")  # fmt: skip
    assert promoted.activated == versions.other and promoted.experiment.status == "promoted"
    serving_state(runtime).invalidate()
    experiment_book(runtime).invalidate()
    after = _serve(runtime, user, use_cache=False)
    assert after.model_version == versions.other
    assert after.experiment is None and after.arm is None  # the experiment is over
    with runtime.read_session() as session:
        assert active_version(session, "ease").version == versions.other  # type: ignore[union-attr]
        [entry] = recent(session, action="experiment.promote")
        assert entry.target == "promote-me" and entry.details["arm"] == "treat"
        assert entry.details["activated"] == versions.other
        assert [e.target for e in recent(session, action="experiment.create")] == ["promote-me"]
        assert recent(session, action="model.activate")[0].details  # the registry's own entry


def test_promote_refuses_while_the_split_is_broken(store: tuple[Runtime, Versions]) -> None:
    runtime, versions = store
    exp = _create(runtime, ab_spec("lossy", versions))
    # the app logs every control user's impressions but loses most of the treatment's
    with runtime.read_session() as session:
        shown = list(session.scalars(select(Item.id).order_by(Item.id).limit(2)))
    served = {}
    treat_kept = 0
    for i in range(150):
        user, arm = f"u{i}", _arm(exp, f"u{i}")
        if arm == "treat":
            treat_kept += 1
            if treat_kept % 5:
                continue
        served[user] = (shown, "lossy", arm)
    simulate(runtime, served, {"control": 0.2, "treat": 0.2}, echo="none")
    with runtime.read_session() as session:
        report = experiments.report(session, "lossy")
    assert report.sample_ratio is not None and report.sample_ratio.flagged
    with runtime.session() as session, pytest.raises(Conflict, match="sample-ratio mismatch"):
        experiments.promote(session, ArtifactStore(runtime.settings.artifact_root), "lossy",
                            "treat", "tests")  # fmt: skip
    with runtime.read_session() as session:
        assert active_version(session, "ease").version == versions.active  # type: ignore[union-attr]
        assert experiments.list_experiments(session)[0].status == "running"
        assert recent(session, action="experiment.promote") == []


def test_a_stopped_experiment_serves_the_default_and_cannot_stop_again(
    store: tuple[Runtime, Versions],
) -> None:
    runtime, versions = store
    exp = _create(runtime, ab_spec("short", versions))
    reset_serving_state(runtime)  # a new process: warm-up loads the arm's version too
    assert warm_up(runtime) == [versions.active, versions.other]
    user = _warm_user_in(runtime, exp, "treat")
    assert _serve(runtime, user, use_cache=False).model_version == versions.other
    with runtime.session() as session:
        experiments.stop(session, "short", "tests")
    experiment_book(runtime).invalidate()
    assert _serve(runtime, user, use_cache=False).model_version == versions.active
    with runtime.session() as session, pytest.raises(Conflict, match="stopped, not running"):
        experiments.stop(session, "short", "tests")


def test_arms_that_cannot_serve_are_refused(store: tuple[Runtime, Versions]) -> None:
    runtime, versions = store
    bad = [
        ([{"name": "a"}, {"name": "a"}], "unique"),
        ([{"name": "a"}, {"name": "b", "model_version": "ease-nope"}], "no model version"),
        ([{"name": "a"}, {"name": "b", "model_type": "reciprocal"}], "does not serve|not a model"),
        ([{"name": "a"}, {"name": "b", "blend": {"model": 1.0}}], "people domain"),
        ([{"name": "a"}, {"name": "b", "model_type": "ease", "model_version": versions.other}],
         "one of"),
    ]  # fmt: skip
    for arms, message in bad:
        spec = ExperimentIn.model_validate({"name": "bad", "arms": arms})
        with runtime.session() as session, pytest.raises(InvalidInput, match=message):
            experiments.create(session, runtime.settings, spec, "tests")
    _create(runtime, ab_spec("first", versions))
    with runtime.session() as session, pytest.raises(Conflict, match="exists"):
        experiments.create(session, runtime.settings, ab_spec("first", versions), "tests")
    with runtime.session() as session, pytest.raises(Conflict, match="is running in the items"):
        experiments.create(session, runtime.settings, ab_spec("second", versions), "tests")


def test_interleaving_mixes_both_arms_and_credits_the_clicked_team(
    store: tuple[Runtime, Versions],
) -> None:
    runtime, versions = store
    spec = ab_spec("mix", versions, kind="interleave")
    _create(runtime, spec)
    teams_seen: set[str] = set()
    for i in range(40):
        result = _serve(runtime, f"u{i}", use_cache=True)
        assert (result.experiment, result.arm) == ("mix", "interleaved")
        assert result.route != "cache"  # interleaved lists are computed live
        teams = [r.team for r in result.recommendations]
        assert all(t in ("control", "treat") for t in teams)
        teams_seen |= set(teams)  # type: ignore[arg-type]
        # the user clicks only what the treatment's ranking put in the list
        clicked = [r.candidate_id for r in result.recommendations if r.team == "treat"]
        simulate(runtime, {f"u{i}": (clicked, None, "treat")}, {"treat": 1.0}, echo="none")
    assert teams_seen == {"control", "treat"}
    with runtime.read_session() as session:
        recorded = session.scalars(select(ExperimentTeam.team)).all()
        report = experiments.report(session, "mix")
    assert set(recorded) == {"control", "treat"}
    assert report.interleaving is not None
    wins = report.interleaving.wins
    assert wins["treat"] > 20 and wins["control"] == 0
    assert report.interleaving.winner == "treat" and report.interleaving.p_value < 0.001


def test_people_arms_blend_weights_count_matches_and_erasure_forgets_teams(
    db_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"),
                        analytics_sample_rate=1.0, domain="people")  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    try:
        with runtime.session() as session:
            store_users(session, settings, people_fixture())
        arms = [{"name": "control"}, {"name": "elo", "blend": {"elo": 10.0, "swipe_rates": 0.0}}]
        split = [("control", 1.0), ("elo", 1.0)]
        salt = next(f"s{n}" for n in range(100) if assign_arm(f"s{n}", "alice", split) == "elo")
        spec = {"name": "dating", "arms": arms, "salt": salt, "outcome_actions": ["like"]}
        exp = _create(runtime, ExperimentIn.model_validate(spec))
        assert exp.domain == "people"
        with runtime.read_session() as session:
            served = recommend(runtime, session, "alice", limit=5, use_cache=False)
            default = recommend(runtime, session, "alice", limit=5, use_cache=False,
                                experiments=False)  # fmt: skip
        assert (served.experiment, served.arm) == ("dating", "elo")
        assert [r.candidate_id for r in served.recommendations]  # bob, carl, ivan fit alice
        assert [r.score for r in served.recommendations] != [
            r.score for r in default.recommendations
        ]  # the arm's blend weights rank with elo alone
        events = [ImpressionEvent(event_type="impression", user_id="alice",
                                  candidate_ids=["bob"], candidate_kind="user"),
                  InteractionIn(user_id="alice", target_user_id="bob", action="like"),
                  InteractionIn(user_id="bob", target_user_id="alice", action="like")]  # fmt: skip
        with runtime.session() as session:
            store_events(session, settings, events)
            ident = session.scalar(select(Experiment.id))
            session.add(ExperimentTeam(experiment_id=ident, user_id="carl", candidate_id="bob",
                                       team="elo", position=1))  # fmt: skip
            session.add(ExperimentTeam(experiment_id=ident, user_id="alice", candidate_id="ivan",
                                       team="elo", position=1))  # fmt: skip
        with runtime.read_session() as session:
            report = experiments.report(session, "dating")
        [elo] = [a for a in report.arms if a.arm == "elo"]
        assert (elo.users, elo.impressions, elo.conversions, elo.matches) == (1, 1, 1, 1)
        erase_user(runtime, "bob", "tests")
        with runtime.read_session() as session:
            left = session.execute(select(ExperimentTeam.user_id, ExperimentTeam.candidate_id))
            assert left.all() == [("alice", "ivan")]  # bob gone as a candidate too
    finally:
        runtime.close()


def test_an_experiment_past_its_stop_time_serves_nobody_and_makes_way(
    store: tuple[Runtime, Versions],
) -> None:
    runtime, versions = store
    now = datetime.now(UTC)
    _create(runtime, ab_spec("over", versions, starts_at=now - timedelta(hours=2),
                             stops_at=now - timedelta(hours=1)))  # fmt: skip
    assert {_serve(runtime, u, use_cache=False).arm for u in USERS[:20]} == {None}
    with runtime.read_session() as session:  # and it no longer says it runs
        assert [e.status for e in experiments.list_experiments(session)] == ["ended"]
        assert experiments.list_experiments(session, "running") == []
        assert [e.name for e in experiments.list_experiments(session, "ended")] == ["over"]
    nxt = _create(runtime, ab_spec("next", versions))  # the ended one no longer blocks
    assert {_serve(runtime, u, use_cache=False).arm for u in USERS[:20]} == {
        _arm(nxt, u) for u in USERS[:20]
    }
