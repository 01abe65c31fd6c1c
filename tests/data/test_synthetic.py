"""Synthetic generators: deterministic, in the DataBundle shape, and learnable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from matchwise.actions import DEFAULT_ACTION_TABLE, LIKE_ACTIONS
from matchwise.data import DataBundle
from matchwise.data.synthetic import (
    DEFAULT_START,
    generate,
    generate_items,
    generate_people,
)
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import haversine_km
from matchwise.schemas import InteractionIn, ItemIn, UserIn

INTERACTION_COLUMNS = [
    "event_id",
    "user_id",
    "item_id",
    "target_user_id",
    "action",
    "value",
    "occurred_at",
]


@pytest.fixture(scope="module")
def people() -> DataBundle:
    return generate_people(n_users=1000, n_swipes=20_000, seed=42)


@pytest.fixture(scope="module")
def events() -> DataBundle:
    return generate_items(n_users=1000, n_items=500, n_interactions=20_000, seed=42)


@pytest.fixture(scope="module")
def startups() -> DataBundle:
    return generate_items(n_users=400, n_items=200, n_interactions=6_000, seed=3, kind="startup")


def _none(value: object) -> object:
    if isinstance(value, list | dict):
        return value
    return None if pd.isna(value) else value


def _record(row: dict) -> dict:
    return {k: _none(v) for k, v in row.items()}


def assert_contract(bundle: DataBundle) -> None:
    """The frame shapes DataBundle documents, checked row by row against the wire contract."""
    users, items, x = bundle.users, bundle.items, bundle.interactions
    assert users["id"].is_unique and items["id"].is_unique if len(items) else True
    assert list(x.columns) == INTERACTION_COLUMNS
    assert x["event_id"].is_unique
    assert x["event_id"].notna().all()
    assert str(x["occurred_at"].dt.tz) == "UTC"
    assert x["value"].dtype == np.float64
    one_target = x["item_id"].notna() ^ x["target_user_id"].notna()
    assert one_target.all()
    assert set(x["action"]) <= set(DEFAULT_ACTION_TABLE)
    assert all(isinstance(t, list) for t in users["tags"])
    assert all(isinstance(a, dict) for a in users["attributes"])
    for row in users.sample(min(50, len(users)), random_state=0).to_dict("records"):
        UserIn.model_validate(_record(row))
    for row in items.head(50).to_dict("records"):
        record = _record(row)
        if record.get("starts_at") is not None:
            record["starts_at"] = record["starts_at"].to_pydatetime()
        ItemIn.model_validate(record)
    for row in x.head(50).to_dict("records"):
        record = _record(row)
        record["timestamp"] = record.pop("occurred_at").to_pydatetime()
        InteractionIn.model_validate(record)


# --- determinism and shape -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: generate_people(n_users=150, n_swipes=2_000, seed=seed),
        lambda seed: generate_items(n_users=150, n_items=60, n_interactions=2_000, seed=seed),
        lambda seed: generate_items(
            n_users=150, n_items=60, n_interactions=2_000, seed=seed, kind="startup"
        ),
    ],
    ids=["people", "events", "startups"],
)
def test_same_seed_gives_identical_frames(make) -> None:
    a, b, c = make(7), make(7), make(8)
    for frame in ("users", "items", "interactions"):
        pd.testing.assert_frame_equal(getattr(a, frame), getattr(b, frame))
    assert not a.interactions["event_id"].equals(c.interactions["event_id"])
    assert not a.users["bio" if "bio" in a.users else "tags"].equals(c.users["bio"])


def test_people_bundle_matches_contract(people: DataBundle) -> None:
    assert people.domain == "people"
    assert len(people.users) == 1000 and len(people.interactions) == 20_000
    assert len(people.items) == 0
    assert_contract(people)
    x = people.interactions
    assert x["item_id"].isna().all()
    assert set(x["action"]) == {"like", "superlike", "pass"}


def test_item_bundles_match_contract(events: DataBundle, startups: DataBundle) -> None:
    for bundle in (events, startups):
        assert bundle.domain == "items"
        assert_contract(bundle)
        assert bundle.interactions["target_user_id"].isna().all()
    assert len(events.interactions) == 20_000
    assert set(events.items["kind"]) == {"event"}
    assert set(startups.items["kind"]) == {"startup"}
    assert {"apply", "interest"} <= set(startups.interactions["action"])
    assert not {"register", "unregister"} & set(startups.interactions["action"])
    assert {"view", "click", "register", "favorite"} <= set(events.interactions["action"])
    assert events.items["category"].nunique() == 10
    assert events.items["city"].nunique() == 8
    assert len({t for tags in events.items["tags"] for t in tags}) >= 45
    assert all(2 <= len(t) <= 4 for t in events.items["tags"])


def test_every_interaction_refers_to_existing_users_and_items(
    people: DataBundle, events: DataBundle
) -> None:
    ids = set(people.users["id"])
    assert set(people.interactions["user_id"]) <= ids
    assert set(people.interactions["target_user_id"]) <= ids
    assert set(events.interactions["user_id"]) <= set(events.users["id"])
    assert set(events.interactions["item_id"]) <= set(events.items["id"])


def test_times_lie_in_the_window(people: DataBundle, events: DataBundle) -> None:
    start = pd.Timestamp(DEFAULT_START)
    for bundle in (people, events):
        t = bundle.interactions["occurred_at"]
        assert t.min() >= start and t.max() <= start + pd.Timedelta(days=60)
        assert t.is_monotonic_increasing
        assert bundle.meta["now"] == start + pd.Timedelta(days=60)
    starts = events.items["starts_at"]
    now = events.meta["now"]
    assert (starts < now).mean() > 0.3 and (starts > now).mean() > 0.2  # past and future


def test_profiles_look_like_real_people(people: DataBundle) -> None:
    u = people.users
    assert u["age"].between(18, 65).all()
    assert 26 <= u["age"].median() <= 33  # skewed young like OkCupid
    shares = u["gender"].value_counts(normalize=True)
    assert 0.5 < shares["man"] < 0.65 and 0.33 < shares["woman"] < 0.47
    straight = [
        s == ["woman"] if g == "man" else s == ["man"]
        for g, s in zip(u["gender"], u["seeking"], strict=True)
        if g != "nonbinary"
    ]
    assert 0.8 < np.mean(straight) < 0.92
    assert (u["age_min"] <= u["age"]).all() and (u["age"] <= u["age_max"]).all()
    assert u["city"].nunique() >= 3
    tags = {t for ts in u["tags"] for t in ts}
    assert 35 <= len(tags) <= 45
    assert u["bio"].nunique() > 0.95 * len(u)
    attrs = pd.DataFrame(list(u["attributes"]))
    assert {"smokes", "drinks", "education", "photo_count"} <= set(attrs.columns)
    assert attrs["smokes"].value_counts(normalize=True)["no"] > 0.7


def test_bios_carry_the_lifestyle_signal(people: DataBundle) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    truth = people.meta["truth"]["users"]
    vectors = TfidfVectorizer().fit_transform(people.users["bio"])
    sim = (vectors @ vectors.T).toarray()
    same = truth["lifestyle"].to_numpy()[:, None] == truth["lifestyle"].to_numpy()[None, :]
    np.fill_diagonal(sim, np.nan)
    assert np.nanmean(sim[same]) > 1.5 * np.nanmean(sim[~same])


# --- people: the feed and the learnability of likes -----------------------------------------


def test_swipes_are_mostly_within_mutual_preferences(people: DataBundle) -> None:
    u = people.users.set_index("id")
    x = people.interactions
    a, b = u.loc[x["user_id"]], u.loc[x["target_user_id"]]
    dist = haversine_km(
        a.latitude.values, a.longitude.values, b.latitude.values, b.longitude.values
    )

    def admits(p: pd.DataFrame, q: pd.DataFrame) -> np.ndarray:
        gender = np.array([g in s for g, s in zip(q.gender, p.seeking, strict=True)])
        ages = (q.age.values >= p.age_min.values) & (q.age.values <= p.age_max.values)
        return gender & ages & (dist <= p.max_distance_km.values + 1e-6)

    mutual = admits(a, b) & admits(b, a)
    assert mutual.mean() > 0.85
    assert (x["user_id"] != x["target_user_id"]).all()
    assert not x.duplicated(["user_id", "target_user_id"]).any()
    assert people.meta["stats"]["mutual_preference_share"] == pytest.approx(mutual.mean())


def test_attractiveness_drives_received_likes(people: DataBundle) -> None:
    x = people.interactions
    liked = x["action"].isin(LIKE_ACTIONS)
    received = liked.groupby(x["target_user_id"]).agg(["mean", "size"])
    received = received[received["size"] >= 5]
    truth = people.meta["truth"]["users"].loc[received.index, "attractiveness"]
    rho = spearmanr(truth, received["mean"]).statistic
    assert rho > 0.5
    # an observable proxy (photo count) carries part of the signal, as in real apps
    photos = (
        people.users.set_index("id")
        .loc[received.index, "attributes"]
        .map(lambda a: a["photo_count"])
    )
    assert spearmanr(photos, received["mean"]).statistic > 0.2


def test_mutual_likes_beat_independence(people: DataBundle) -> None:
    x = people.interactions
    liked = x["action"].isin(LIKE_ACTIONS).to_numpy()
    out_rate = pd.Series(liked).groupby(x["user_id"].to_numpy()).mean()
    in_rate = pd.Series(liked).groupby(x["target_user_id"].to_numpy()).mean()
    base = liked.mean()
    forward = pd.Series(liked, index=pd.MultiIndex.from_arrays([x.user_id, x.target_user_id]))
    back = forward.reindex(pd.MultiIndex.from_arrays([x.target_user_id, x.user_id]))
    both = back.notna().to_numpy()
    assert both.sum() > 2000  # many pairs saw each other
    a, b = x["user_id"].to_numpy()[both], x["target_user_id"].to_numpy()[both]
    observed = (liked[both] & back.to_numpy()[both].astype(bool)).sum()
    # independence given how much each swiper likes and each person is liked
    p_ab = np.clip(out_rate.loc[a].to_numpy() * in_rate.loc[b].to_numpy() / base, 0, 1)
    p_ba = np.clip(out_rate.loc[b].to_numpy() * in_rate.loc[a].to_numpy() / base, 0, 1)
    assert observed > 1.4 * (p_ab * p_ba).sum()
    # and, for swipers of one gender, a like is answered by a like more often than a pass is
    gender = people.users.set_index("id").loc[x["user_id"], "gender"].to_numpy()[both]
    f, r = liked[both], back.to_numpy()[both].astype(bool)
    for g in ("man", "woman"):
        m = gender == g
        assert r[m & f].mean() > 1.2 * r[m & ~f].mean()


def test_men_like_more_than_women(people: DataBundle) -> None:
    x = people.interactions
    gender = people.users.set_index("id").loc[x["user_id"], "gender"].to_numpy()
    rate = x["action"].isin(LIKE_ACTIONS).groupby(gender).mean()
    assert rate["man"] > 1.5 * rate["woman"]
    assert 0.02 < (x["action"] == "superlike").mean() < 0.08


# --- items: interests, funnel and time --------------------------------------------------------


def _overlap(users: pd.DataFrame, items: pd.DataFrame, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    ut, it = users.set_index("id")["tags"], items.set_index("id")["tags"]
    return np.array(
        [bool(set(a) & set(b)) for a, b in zip(ut.loc[u], it.loc[i], strict=True)], dtype=bool
    )


def test_users_act_on_items_sharing_their_tags(events: DataBundle) -> None:
    x = events.interactions
    positive = x[x["action"].isin(["register", "favorite"])]
    hit = _overlap(events.users, events.items, positive["user_id"], positive["item_id"]).mean()
    rng = np.random.default_rng(0)
    ru = rng.choice(events.users["id"], 5000)
    ri = rng.choice(events.items["id"], 5000)
    chance = _overlap(events.users, events.items, ru, ri).mean()
    assert hit > 2.0 * chance
    views = x[x["action"] == "view"]
    city = (
        events.users.set_index("id").loc[views["user_id"], "city"].to_numpy()
        == events.items.set_index("id").loc[views["item_id"], "city"].to_numpy()
    )
    assert city.mean() > 1.8 * (1 / 8)


def test_funnel_and_per_user_order(events: DataBundle) -> None:
    x = events.interactions
    counts = x["action"].value_counts()
    assert counts["view"] > 2 * counts["click"] > 2 * counts["register"]
    assert counts["register"] > counts["share"] and counts["register"] > counts["unregister"]
    assert 0 < counts["impression"] < counts["view"]
    first = x.groupby(["user_id", "item_id", "action"])["occurred_at"].min().unstack()
    clicked = first.dropna(subset=["click"])
    assert (clicked["view"] <= clicked["click"]).all()
    registered = first.dropna(subset=["register"])
    assert (registered["click"] <= registered["register"]).all()
    assert registered["click"].notna().all()
    unreg = first.dropna(subset=["unregister"])
    assert (unreg["register"] <= unreg["unregister"]).all()
    starts = events.items.set_index("id")["starts_at"]
    regs = x[x["action"] == "register"]
    assert (regs["occurred_at"].to_numpy() <= starts.loc[regs["item_id"]].to_numpy()).all()


def test_time_ordered_split_is_learnable(events: DataBundle) -> None:
    x = events.interactions
    cut = x["occurred_at"].quantile(0.8)
    train, test = x[x["occurred_at"] <= cut], x[x["occurred_at"] > cut]
    category = events.items.set_index("id")["category"]
    positives = ["click", "register", "favorite"]
    pos_train = train[train["action"].isin(positives)]
    top = (
        pos_train.assign(category=category.loc[pos_train["item_id"]].to_numpy())
        .groupby("user_id")["category"]
        .agg(lambda s: s.value_counts().index[0])
    )
    pos_test = test[test["action"].isin(positives) & test["user_id"].isin(top.index)]
    assert len(pos_test) > 500
    hit = category.loc[pos_test["item_id"]].to_numpy() == top.loc[pos_test["user_id"]].to_numpy()
    assert hit.mean() > 2.5 * (1 / 10)


# --- presets and arguments ------------------------------------------------------------------


def test_presets() -> None:
    small = generate("people", "small", seed=1)
    assert (len(small.users), len(small.interactions)) == (300, 5_000)
    items = generate("items", "small", seed=1)
    assert (len(items.users), len(items.interactions)) == (300, 5_000)
    startups = generate("startups", "small", seed=1, n_items=40)
    assert set(startups.items["kind"]) == {"startup"} and len(startups.items) == 40
    assert small.meta["truth"]["users"].index.equals(pd.Index(small.users["id"], name="id"))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: generate("cats"), "unknown domain 'cats'"),
        (lambda: generate("people", "huge"), "unknown size 'huge'"),
        (lambda: generate_items(kind="film"), "kind must be 'event' or 'startup'"),
        (lambda: generate_people(n_users=1), "n_users must be at least 2"),
        (lambda: generate_people(n_users=3, n_swipes=7), "n_swipes must be between"),
    ],
)
def test_bad_arguments(call, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        call()


def test_tiny_and_empty_sizes() -> None:
    tiny = generate_people(n_users=5, n_swipes=20, seed=1)
    assert len(tiny.interactions) == 20
    assert not tiny.interactions.duplicated(["user_id", "target_user_id"]).any()
    assert len(generate_people(n_users=10, n_swipes=0).interactions) == 0
    assert len(generate_items(n_users=3, n_items=2, n_interactions=0).interactions) == 0
    assert len(generate_items(n_users=3, n_items=2, n_interactions=40).interactions) == 40


def test_custom_start_is_respected() -> None:
    b = generate_people(n_users=50, n_swipes=200, start="2024-03-01", days=7)
    t = b.interactions["occurred_at"]
    assert t.min() >= pd.Timestamp("2024-03-01", tz="UTC")
    assert t.max() <= pd.Timestamp("2024-03-08", tz="UTC")


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["people", "items"])
def test_a_million_interactions(domain: str) -> None:
    """The large preset holds a million distinct events (its speed, ~6 s on a free core,
    belongs in a benchmark, not in an assertion)."""
    bundle = generate(domain, "large", seed=5)
    assert len(bundle.interactions) == 1_000_000
    assert bundle.interactions["event_id"].is_unique
