"""Speed Dating benchmark: three protocols, the same peers, and matchwise's people ranking.

Each person's answers identify them, so what a protocol lets a model know about the
people on a date decides what its figures mean:

- ``pair`` (the first protocol): hold out 20% of *pairs* (both directions together,
  seeded) and learn from the rest, evenings mixed. A held-out date's two people made
  other decisions that evening, before *and after* it, and the models see them (how choosy
  and how desired each was that night): an upper bound, not how people arrive.
- ``new-event``: whole evenings held out: train on the first half of the waves (1-5 in
  the public file), test on the second (6-10), then the reverse. Every test person is new
  and only the sign-up survey speaks for them; Joel, Eastwick & Finkel (Psychological
  Science, 2017) found it says something about how choosy and how desired a person is,
  almost nothing about who desires whom.
- ``replay``: the same splits, each held-out evening replayed in the order of its dates:
  a date in round r is predicted from the survey and every decision made in rounds before
  r of that evening, none from round r or later, as a dating app meets newcomers. A
  date's round is the later of its two people's ``order`` (in an evening with uneven
  groups some people sit rounds out, so their own count runs behind the clock).

Scorers, the same in every protocol: ``random``; ``popularity`` (the partner's smoothed
received-yes rate from the decisions known: training pairs; none for new people; earlier
rounds in the replay); ``one_sided`` (the survey model's P(a says yes to b):
:class:`SpeedDatingModel` on :func:`pair_features`; in ``new-event`` and ``replay`` without
the decision counts, which new people do not have); ``reciprocal`` (harmonic mean of its
two directions); ``matchwise`` (serving's people ranking itself:
:func:`matchwise.serve.people.score_people` with the settings' blend weights, on a
:class:`~matchwise.serve.state.PeopleCatalogue` holding what serving would hold at that
moment: every swipe recorded so far, Elo moved by each as ingestion moves it, each
person's running swipe rates; the survey model stands in for the people model that
serving's ``model`` and ``reciprocal`` signals read); and in ``replay`` the
``reference``: the survey model's features plus both people's running yes-rate and
received-yes-rate (smoothed as matchwise smooths them) in one model trained on the
replayed training evenings, scored P(a→b)·P(b→a).

Metrics: decision AUC over held-out rows (``dec``), match AUC over held-out rows (label
``match``; each pair once per direction), NDCG@5 ranking each person's held-out partners
with their matches relevant; the replay adds the match AUC by third of the evening (rounds
up to a third of the evening's rounds, up to two thirds, the rest). Where
:func:`matchwise.metrics.paired_bootstrap` is available, matchwise's match AUC minus each
peer's comes with a 95% paired bootstrap interval over the held-out people (each person's
share of the AUC: how their matches place among all non-matches).

Only allow-listed columns are read (:func:`~matchwise.data.speed_dating.pre_date_view`);
``order`` is a time, never a feature.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from rich.table import Table

from matchwise.bench.provenance import provenance
from matchwise.data.speed_dating import (
    ATTRIBUTES5,
    ATTRIBUTES6,
    DEMOGRAPHIC_COLUMNS,
    INTERESTS,
    SURVEY_COLUMNS,
    normalised_prefs,
    person_table,
    pre_date_view,
    read_speed_dating_frame,
    users_frame,
)
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import ProfileArrays
from matchwise.features.people import RATE_PRIOR_SWIPES, like_rate, reciprocal_score, smoothed_rate
from matchwise.metrics import auc, grouped_ndcg, paired_bootstrap
from matchwise.models import elo
from matchwise.models.base import InteractionSet
from matchwise.models.pairwise import PairwiseRecommender
from matchwise.models.reciprocal import fit_logistic
from matchwise.serve.people import score_people
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.settings import Settings

__all__ = [
    "DECISION_FEATURES",
    "PROTOCOLS",
    "SpeedDatingData",
    "SpeedDatingModel",
    "date_rounds",
    "new_event_scores",
    "pair_scores",
    "pair_features",
    "render_tables",
    "replay_scores",
    "run_speed_dating_benchmark",
    "running_counts",
    "wave_splits",
]

log = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("pair", "new-event", "replay")
#: Features counted from training decisions: a new person has none, so the new-event and
#: replay survey models leave them out (in training they would stand for what the test
#: evening cannot supply).
DECISION_FEATURES: tuple[str, ...] = (
    "chooser_selectivity",
    "chooser_seen",
    "partner_popularity",
    "partner_selectivity",
    "popularity_x_attr_pref",
)


# --- the data ------------------------------------------------------------------------------
@dataclass
class SpeedDatingData:
    """The file as the benchmark reads it: the allow-listed columns only, with each row's
    decision, match flag, evening and the round its date took place in."""

    name: str
    view: pd.DataFrame
    dec: np.ndarray
    match: np.ndarray
    wave: np.ndarray
    rounds: np.ndarray | None
    int_corr: np.ndarray
    samerace: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "speed-dating") -> SpeedDatingData:
        view = pre_date_view(frame).reset_index(drop=True)  # nothing else from here on
        if "match" not in view:
            raise InvalidInput(f"{name}: the benchmark needs the 'match' column")
        n = len(view)

        def column(name: str) -> np.ndarray:
            return view[name].to_numpy(np.float64) if name in view else np.full(n, np.nan)

        return cls(
            name=name,
            view=view,
            dec=view["dec"].to_numpy(np.int64),
            match=view["match"].to_numpy(np.float64) == 1,
            wave=column("wave"),
            rounds=date_rounds(view),
            int_corr=column("int_corr"),
            samerace=column("samerace"),
        )

    @classmethod
    def read(cls, path: str | Path) -> SpeedDatingData:
        p = Path(path)
        return cls.from_frame(read_speed_dating_frame(p), p.stem)

    def waves(self) -> list[int]:
        return sorted(int(w) for w in np.unique(self.wave[~np.isnan(self.wave)]))

    def rows_of(self, waves: Sequence[int]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.wave, list(waves)))


def date_rounds(view: pd.DataFrame) -> np.ndarray | None:
    """The round of the evening each date took place in: the later of its two people's
    ``order`` (someone sitting a round out falls behind the clock, the other does not).
    None when the file has no usable ``order``."""
    if "order" not in view or view["order"].isna().any():
        return None
    order = view["order"].to_numpy(np.float64)
    mine = pd.Series(order, index=pd.MultiIndex.from_arrays([view["iid"], view["pid"]]))
    theirs = mine.reindex(pd.MultiIndex.from_arrays([view["pid"], view["iid"]])).to_numpy()
    return np.fmax(order, theirs)  # a partner without a row of their own: the row's order


def wave_splits(waves: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Whole evenings held out: the first half of the waves against the second, then the
    reverse (waves 1-5 and 6-10 in the public file)."""
    ordered = sorted(waves)
    if len(ordered) < 2:
        raise InvalidInput("holding whole evenings out needs at least two waves")
    half = (len(ordered) + 1) // 2
    first, second = ordered[:half], ordered[half:]
    return [(first, second), (second, first)]


def _split_name(train: Sequence[int], test: Sequence[int]) -> str:
    def span(waves: Sequence[int]) -> str:
        return f"{waves[0]}-{waves[-1]}" if len(waves) > 1 else str(waves[0])

    return f"waves {span(train)} -> {span(test)}"


# --- the survey model -------------------------------------------------------------------------
@dataclass
class _Context:
    """Person-level arrays and training-pair decision counts, by dense person index."""

    index: pd.Index
    people: pd.DataFrame
    prefs: np.ndarray  # (n, 6) shares of 1_1
    self_rating: np.ndarray  # (n, 5) 3_1 in attr, sinc, intel, fun, amb order
    interests: np.ndarray  # (n, 17) centred per person
    yes_given: np.ndarray
    n_given: np.ndarray
    yes_received: np.ndarray
    n_received: np.ndarray


def _context(view: pd.DataFrame, train_rows: np.ndarray) -> _Context:
    people = person_table(view)
    index = pd.Index(people.index)
    n = len(index)
    prefs = normalised_prefs(people, "1_1", ATTRIBUTES6)
    self_rating = np.column_stack(
        [
            people[f"{a}3_1"].to_numpy(np.float64) if f"{a}3_1" in people else np.full(n, np.nan)
            for a in ATTRIBUTES5
        ]
    )
    raw = np.column_stack(
        [people[c].to_numpy(np.float64) if c in people else np.full(n, np.nan) for c in INTERESTS]
    )
    with warnings.catch_warnings():  # a person without interest scores: NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        centred = raw - np.nanmean(raw, axis=1, keepdims=True) if n else raw
    train = view.iloc[train_rows]
    a = index.get_indexer(train["iid"])
    b = index.get_indexer(train["pid"])
    dec = train["dec"].to_numpy(np.float64)
    return _Context(
        index=index,
        people=people,
        prefs=prefs,
        self_rating=self_rating,
        interests=np.nan_to_num(centred),
        yes_given=np.bincount(a, weights=dec, minlength=n),
        n_given=np.bincount(a, minlength=n).astype(np.float64),
        yes_received=np.bincount(b, weights=dec, minlength=n),
        n_received=np.bincount(b, minlength=n).astype(np.float64),
    )


def _col(people: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    if name not in people:
        return np.full(len(rows), np.nan)
    return people[name].to_numpy(np.float64)[rows]


def pair_features(
    ctx: _Context,
    chooser: np.ndarray,
    partner: np.ndarray,
    int_corr: np.ndarray,
    samerace: np.ndarray,
    own_decision: np.ndarray | None = None,
) -> pd.DataFrame:
    """Features of "does ``chooser`` say yes to ``partner``", vectorised over pairs.

    ``own_decision`` (training rows only) is taken out of the popularity and selectivity
    counts, so a training row never sees its own label (leave-one-out).
    """
    p = ctx.people
    yes_given, n_given = ctx.yes_given[chooser], ctx.n_given[chooser]
    yes_recv, n_recv = ctx.yes_received[partner], ctx.n_received[partner]
    if own_decision is not None:
        yes_given, n_given = yes_given - own_decision, n_given - 1
        yes_recv, n_recv = yes_recv - own_decision, n_recv - 1
    selectivity = (yes_given + 1.0) / (n_given + 2.0)
    popularity = (yes_recv + 1.0) / (n_recv + 2.0)
    partner_selectivity = (ctx.yes_given[partner] + 1.0) / (ctx.n_given[partner] + 2.0)
    age_c, age_p = _col(p, "age", chooser), _col(p, "age", partner)
    a_int, b_int = ctx.interests[chooser], ctx.interests[partner]
    norms = np.linalg.norm(a_int, axis=1) * np.linalg.norm(b_int, axis=1)
    interest_cos = np.divide(
        (a_int * b_int).sum(axis=1), norms, out=np.zeros(len(chooser)), where=norms > 0
    )
    prefs = ctx.prefs[chooser]  # attr sinc intel fun amb shar
    partner_self = ctx.self_rating[partner]  # attr sinc intel fun amb
    pref_fit = np.nansum(prefs[:, :5] * partner_self, axis=1)
    imprace = _col(p, "imprace", chooser)
    features = {
        "chooser_gender": _col(p, "gender", chooser),
        "chooser_age": age_c,
        "chooser_imprace": imprace,
        "chooser_imprelig": _col(p, "imprelig", chooser),
        "chooser_goal": _col(p, "goal", chooser),
        "chooser_date": _col(p, "date", chooser),
        "chooser_go_out": _col(p, "go_out", chooser),
        "chooser_selectivity": selectivity,
        "chooser_seen": n_given,
        "partner_age": age_p,
        "partner_popularity": popularity,
        "partner_selectivity": partner_selectivity,
        "age_gap": age_p - age_c,
        "abs_age_gap": np.abs(age_p - age_c),
        "int_corr": int_corr,
        "samerace": samerace,
        "samerace_x_imprace": samerace * imprace,
        "same_goal": (_col(p, "goal", chooser) == _col(p, "goal", partner)).astype(float),
        "same_field": (_col(p, "field_cd", chooser) == _col(p, "field_cd", partner)).astype(float),
        "interest_cosine": interest_cos,
        "pref_fit": pref_fit,
        "popularity_x_attr_pref": popularity * np.nan_to_num(prefs[:, 0], nan=1 / 6),
    }
    for k, name in enumerate(ATTRIBUTES6):
        features[f"chooser_pref_{name}"] = prefs[:, k]
    for k, name in enumerate(ATTRIBUTES5):
        features[f"partner_self_{name}"] = partner_self[:, k]
        features[f"chooser_self_{name}"] = ctx.self_rating[chooser, k]
    return pd.DataFrame(features)


class SpeedDatingModel:
    """P(a says yes to b) from pre-date features: L2 logistic regression on standardised,
    median-imputed features, or LightGBM when there are enough training rows
    (``kind="auto"``: 2,000 or more; one thread, seeded)."""

    def __init__(self, kind: str = "auto", seed: int = 42, l2: float = 10.0) -> None:
        if kind not in ("auto", "logistic", "lightgbm"):
            raise InvalidInput(f"unknown speed-dating model {kind!r}; use auto, logistic, lightgbm")
        self.kind = kind
        self.seed = seed
        self.l2 = float(l2)
        self.model_: Any = None
        self.mean_: np.ndarray = np.zeros(0)
        self.std_: np.ndarray = np.ones(0)
        self.columns_: list[str] = []
        self.medians_: pd.Series | None = None
        self.kind_: str = kind

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> SpeedDatingModel:
        self.columns_ = list(X.columns)
        self.kind_ = (
            self.kind if self.kind != "auto" else ("lightgbm" if len(X) >= 2000 else "logistic")
        )
        if len(np.unique(y)) < 2:
            raise InvalidInput("the training pairs hold only one kind of decision")
        if self.kind_ == "lightgbm":
            import lightgbm as lgb

            self.model_ = lgb.LGBMClassifier(
                n_estimators=300,
                learning_rate=0.03,
                num_leaves=15,
                min_child_samples=30,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                reg_lambda=5.0,
                n_jobs=1,
                random_state=self.seed,
                verbose=-1,
            ).fit(X.to_numpy(np.float64), y)
        else:
            self.medians_ = X.median().fillna(0.0)
            filled = X.fillna(self.medians_).to_numpy(np.float64)
            self.mean_, std = filled.mean(axis=0), filled.std(axis=0)
            self.std_ = np.where(std > 1e-12, std, 1.0)
            self.model_ = fit_logistic((filled - self.mean_) / self.std_, y, l2=self.l2)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.model_ is None:
            raise InvalidInput("the speed-dating model is not fitted")
        X = X[self.columns_]
        if self.kind_ == "logistic":
            assert self.medians_ is not None
            filled = X.fillna(self.medians_).to_numpy(np.float64)
            coef, intercept = self.model_
            logits = ((filled - self.mean_) / self.std_) @ coef + intercept
            return 0.5 * (1.0 + np.tanh(0.5 * logits))
        return np.asarray(self.model_.predict_proba(X.to_numpy(np.float64))[:, 1])


# --- what serving holds ---------------------------------------------------------------------
class _Store:
    """What serving's people catalogue holds at one moment: every swipe recorded so far,
    Elo moved by each as ingestion moves it (:func:`matchwise.models.elo.update` with the
    settings' K factor), each person's swipes given and received and everyone's like rate;
    each person's own swipes as their history. Scores with serving's own function."""

    def __init__(self, data: SpeedDatingData, settings: Settings) -> None:
        users = users_frame(data.view)
        profiles = ProfileArrays.from_frame(users, cell_km=settings.location_cell_km)
        n = len(profiles)
        self.settings = settings
        self.index = pd.Index(person_table(data.view).index)  # users_frame's order
        self.ids = profiles.ids
        self.chooser = self.index.get_indexer(data.view["iid"])
        self.partner = self.index.get_indexer(data.view["pid"])
        self.dec = data.dec
        self.cat = PeopleCatalogue(
            profiles=profiles,
            visible=np.ones(n, dtype=bool),
            elo=np.full(n, float(settings.elo.initial)),
            likes_received=np.zeros(n),
            swipes_received=np.zeros(n),
            bios=[""] * n,
            city_lc=np.full(n, "", dtype=object),
            loaded_at=0.0,
            position={str(v): i for i, v in enumerate(profiles.ids.tolist())},
            likes_given=np.zeros(n),
            swipes_given=np.zeros(n),
        )
        self.history: list[list[tuple[str | None, str]]] = [[] for _ in range(n)]
        self.liked: set[tuple[int, int]] = set()

    def record(self, rows: np.ndarray) -> None:
        """The decisions of ``rows``, in that order, as swipes arriving."""
        if len(rows) == 0:
            return
        a, b = self.chooser[rows], self.partner[rows]
        liked = self.dec[rows] == 1
        actions = np.where(liked, "like", "pass").tolist()
        elo_settings = self.settings.elo
        elo.update(self.cat.elo, a, b, actions, k_factor=elo_settings.k_factor,
                   superlike_weight=elo_settings.superlike_weight)  # fmt: skip
        np.add.at(self.cat.likes_given, a, liked.astype(np.float64))
        np.add.at(self.cat.swipes_given, a, 1.0)
        np.add.at(self.cat.likes_received, b, liked.astype(np.float64))
        np.add.at(self.cat.swipes_received, b, 1.0)
        self.cat.like_rate = like_rate(self.cat.likes_received, self.cat.swipes_received)
        for ai, bi, action in zip(a.tolist(), b.tolist(), actions, strict=True):
            self.history[ai].append((str(self.ids[bi]), action))
            if action == "like":
                self.liked.add((ai, bi))

    def copy(self) -> _Store:
        """A store holding the same swipes, to record more into without touching this one."""
        other = copy.copy(self)
        cat = self.cat
        other.cat = dataclasses.replace(
            cat,
            elo=cat.elo.copy(),
            likes_given=cat.likes_given.copy(),
            swipes_given=cat.swipes_given.copy(),
            likes_received=cat.likes_received.copy(),
            swipes_received=cat.swipes_received.copy(),
        )
        other.history = [list(h) for h in self.history]
        other.liked = set(self.liked)
        return other

    def score(
        self, rows: np.ndarray, p_ab: np.ndarray, p_ba: np.ndarray, model_type: str | None = None
    ) -> np.ndarray:
        """Serving's blend score of each row's partner in its chooser's list, the list being
        ``rows``' partners (one chooser), ``p_ab``/``p_ba`` the people model's two directions
        (``model_type``: which model serves them, for the blend's weights; None: the survey
        model standing in for the reciprocal model)."""
        me = int(self.chooser[rows[0]])
        candidates = self.partner[rows]
        liked_me = np.array([(int(c), me) in self.liked for c in candidates], dtype=bool)
        model = (p_ab, reciprocal_score(p_ab, p_ba, self.settings.reciprocal_mode))
        score, _, _ = score_people(
            self.cat, me, candidates, self.history[me], liked_me, self.settings, model, model_type
        )
        return score


def _by_chooser(store: _Store, rows: np.ndarray) -> list[np.ndarray]:
    chooser = store.chooser[rows]
    return [rows[chooser == c] for c in np.unique(chooser)]


def _matchwise_at_once(
    store: _Store,
    rows: np.ndarray,
    p_ab: np.ndarray,
    p_ba: np.ndarray,
    model_type: str | None = None,
) -> np.ndarray:
    """Every held-out row scored at one moment: each chooser's list is their held-out
    partners, the store what it holds now. ``p_ab``, ``p_ba``: full-length arrays."""
    out = np.zeros(len(store.dec))
    for group in _by_chooser(store, rows):
        out[group] = store.score(group, p_ab[group], p_ba[group], model_type)
    return out[rows]


def _matchwise_replay(
    data: SpeedDatingData,
    store: _Store,
    rows: np.ndarray,
    p_ab: np.ndarray,
    p_ba: np.ndarray,
) -> np.ndarray:
    """Each held-out evening in the order of its rounds: a round's dates are scored with
    what the store holds before the round (each chooser's list: the partners they have
    not met yet), then its decisions are recorded. Every evening starts from what the store
    held before any (the training evenings): no other held-out evening is known."""
    assert data.rounds is not None
    out = np.zeros(len(store.dec))
    before = store
    for wave in np.unique(data.wave[rows]):
        store = before.copy()
        evening = rows[data.wave[rows] == wave]
        for r in np.unique(data.rounds[evening]):
            now = evening[data.rounds[evening] == r]
            ahead = evening[data.rounds[evening] >= r]
            for chooser in np.unique(store.chooser[now]):
                listed = ahead[store.chooser[ahead] == chooser]
                scores = store.score(listed, p_ab[listed], p_ba[listed])
                mine = np.isin(listed, now)
                out[listed[mine]] = scores[mine]
            store.record(now)
    return out[rows]


# --- running rates (the replay's reference and popularity) ------------------------------------
def running_counts(data: SpeedDatingData, rows: np.ndarray) -> np.ndarray:
    """For each row, what its two people had done in earlier rounds of the same evening:
    the chooser's likes given, swipes given, likes received, swipes received, then the
    partner's (8 columns). Decisions from the row's own round or later never count."""
    if data.rounds is None:
        raise InvalidInput(f"{data.name}: the replay needs the 'order' column on every row")
    out = np.zeros((len(rows), 8))
    iid = data.view["iid"].to_numpy()
    pid = data.view["pid"].to_numpy()
    for wave in np.unique(data.wave[rows]):
        evening = np.flatnonzero(data.wave == wave)  # every decision of that evening
        people = pd.Index(np.unique(np.concatenate([iid[evening], pid[evening]])))
        a, b = people.get_indexer(iid[evening]), people.get_indexer(pid[evening])
        r = data.rounds[evening].astype(np.int64)
        yes = (data.dec[evening] == 1).astype(np.float64)
        shape = (len(people), int(r.max()) + 2)
        tables = [np.zeros(shape) for _ in range(4)]
        np.add.at(tables[0], (a, r), yes)  # likes given, in round r
        np.add.at(tables[1], (a, r), 1.0)
        np.add.at(tables[2], (b, r), yes)  # likes received
        np.add.at(tables[3], (b, r), 1.0)
        before = [np.cumsum(t, axis=1) for t in tables]  # column r: up to round r
        mine = np.flatnonzero(data.wave[rows] == wave)
        wanted = rows[mine]
        ca, cb = people.get_indexer(iid[wanted]), people.get_indexer(pid[wanted])
        earlier = data.rounds[wanted].astype(np.int64) - 1
        for j, table in enumerate(before):
            out[mine, j] = table[ca, earlier]
            out[mine, 4 + j] = table[cb, earlier]
    return out


def _rates(counts: np.ndarray, base: float) -> pd.DataFrame:
    """The running counts as smoothed rates (as matchwise smooths them)."""
    prior = float(np.clip(base, 1e-3, 1 - 1e-3))
    return pd.DataFrame(
        {
            "chooser_yes_rate": smoothed_rate(counts[:, 0], counts[:, 1], prior, RATE_PRIOR_SWIPES),
            "chooser_liked_rate": smoothed_rate(counts[:, 2], counts[:, 3], prior,
                                                RATE_PRIOR_SWIPES),
            "partner_yes_rate": smoothed_rate(counts[:, 4], counts[:, 5], prior, RATE_PRIOR_SWIPES),
            "partner_liked_rate": smoothed_rate(counts[:, 6], counts[:, 7], prior,
                                                RATE_PRIOR_SWIPES),
        }
    )  # fmt: skip


def _swap_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """The same rates seen from the partner's side (for P(b says yes to a))."""
    return pd.DataFrame(
        {
            "chooser_yes_rate": rates["partner_yes_rate"].to_numpy(),
            "chooser_liked_rate": rates["partner_liked_rate"].to_numpy(),
            "partner_yes_rate": rates["chooser_yes_rate"].to_numpy(),
            "partner_liked_rate": rates["chooser_liked_rate"].to_numpy(),
        }
    )


# --- protocols ---------------------------------------------------------------------------------
@dataclass
class _Survey:
    """The survey model of one split and its two directions on every row of the file."""

    model: SpeedDatingModel
    forward: pd.DataFrame  # features of "iid says yes to pid", every row
    backward: pd.DataFrame  # features of "pid says yes to iid", every row
    p_ab: np.ndarray
    p_ba: np.ndarray


def _survey(
    data: SpeedDatingData,
    train: np.ndarray,
    kind: str,
    seed: int,
    *,
    new_people: bool,
) -> _Survey:
    ctx = _context(data.view, train)
    chooser = ctx.index.get_indexer(data.view["iid"])
    partner = ctx.index.get_indexer(data.view["pid"])
    forward = pair_features(ctx, chooser, partner, data.int_corr, data.samerace)
    backward = pair_features(ctx, partner, chooser, data.int_corr, data.samerace)
    X_train = pair_features(ctx, chooser[train], partner[train], data.int_corr[train],
                            data.samerace[train], data.dec[train])  # fmt: skip
    if new_people:
        forward = forward.drop(columns=list(DECISION_FEATURES))
        backward = backward.drop(columns=list(DECISION_FEATURES))
        X_train = X_train.drop(columns=list(DECISION_FEATURES))
    model = SpeedDatingModel(kind, seed).fit(X_train, data.dec[train])
    return _Survey(model, forward, backward, model.predict(forward), model.predict(backward))


def _held_out_waves(data: SpeedDatingData, train_waves: Sequence[int],
                    test_waves: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    train, test = data.rows_of(train_waves), data.rows_of(test_waves)
    if len(train) == 0 or len(test) == 0:
        raise InvalidInput(
            f"{data.name}: no rows in waves {list(train_waves)} or {list(test_waves)}"
        )
    return train, test


def new_event_scores(
    data: SpeedDatingData,
    train_waves: Sequence[int],
    test_waves: Sequence[int],
    *,
    settings: Settings,
    seed: int = 42,
    kind: str = "lightgbm",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Held-out rows and each scorer's scores on them, whole evenings held out: the test
    people are new, nothing they decided is known."""
    train, test = _held_out_waves(data, train_waves, test_waves)
    survey = _survey(data, train, kind, seed, new_people=True)
    store = _Store(data, settings)
    store.record(_in_time_order(data, train))
    ctx = _context(data.view, train)
    popularity = (ctx.yes_received + 1.0) / (ctx.n_received + 2.0)
    scores = {
        "random": np.random.default_rng(seed).random(len(test)),
        "popularity": popularity[ctx.index.get_indexer(data.view["pid"].to_numpy()[test])],
        "one_sided": survey.p_ab[test],
        "reciprocal": reciprocal_score(survey.p_ab[test], survey.p_ba[test], "harmonic"),
        "matchwise": _matchwise_at_once(store, test, survey.p_ab, survey.p_ba),
    }
    return test, scores


def replay_scores(
    data: SpeedDatingData,
    train_waves: Sequence[int],
    test_waves: Sequence[int],
    *,
    settings: Settings,
    seed: int = 42,
    kind: str = "lightgbm",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Held-out rows and each scorer's scores on them, each held-out evening replayed in
    the order of its rounds (a row sees decisions from earlier rounds only)."""
    train, test = _held_out_waves(data, train_waves, test_waves)
    survey = _survey(data, train, kind, seed, new_people=True)
    base = like_rate(data.dec[train] == 1, np.ones(len(train)))
    train_rates = _rates(running_counts(data, train), base)
    test_rates = _rates(running_counts(data, test), base)
    X_train = pd.concat([survey.forward.iloc[train].reset_index(drop=True), train_rates], axis=1)
    reference = SpeedDatingModel(kind, seed).fit(X_train, data.dec[train])
    forward = pd.concat([survey.forward.iloc[test].reset_index(drop=True), test_rates], axis=1)
    backward = pd.concat(
        [survey.backward.iloc[test].reset_index(drop=True), _swap_rates(test_rates)], axis=1
    )
    store = _Store(data, settings)
    store.record(_in_time_order(data, train))
    scores = {
        "random": np.random.default_rng(seed).random(len(test)),
        "popularity": test_rates["partner_liked_rate"].to_numpy(),
        "one_sided": survey.p_ab[test],
        "reciprocal": reciprocal_score(survey.p_ab[test], survey.p_ba[test], "harmonic"),
        "reference": reference.predict(forward) * reference.predict(backward),
        "matchwise": _matchwise_replay(data, store, test, survey.p_ab, survey.p_ba),
    }
    return test, scores


def _in_time_order(data: SpeedDatingData, rows: np.ndarray) -> np.ndarray:
    """Rows by evening, then round (file order within a round): how the swipes arrived."""
    if data.rounds is None:
        return rows
    return rows[np.lexsort((rows, data.rounds[rows], data.wave[rows]))]


def pair_scores(
    data: SpeedDatingData,
    *,
    settings: Settings,
    seed: int = 42,
    test_share: float = 0.2,
    kind: str = "auto",
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Held-out rows and each scorer's scores on them, ``test_share`` of pairs held out
    (both directions together); the models and matchwise's store see every other pair's
    decisions, earlier or later the same evening.

    Besides the survey scorers: ``pairwise`` (:class:`PairwiseRecommender`, trained as
    ``matchwise train pairwise`` trains it: on the training swipes and the profiles
    serving stores, its settings chosen on its own validation pairs inside the training
    pairs), ``lgbm_harmonic`` (the peer: a plain LightGBM on both people's raw survey
    answers, its two directions combined by the harmonic mean), and ``matchwise``:
    serving's blend with the pairwise model as the people model and the weights serving
    gives it (:func:`~matchwise.features.people.blend_weights`), as serving runs it when
    that model is trained and active."""
    held = _holdout_pairs(data.view, test_share, seed)
    if held.all() or not held.any():
        raise InvalidInput(f"{data.name}: too few pairs to hold out {test_share:.0%} of them")
    train, test = np.flatnonzero(~held), np.flatnonzero(held)
    survey = _survey(data, train, kind, seed, new_people=False)
    p_ab, p_ba = survey.p_ab[test], survey.p_ba[test]
    store = _Store(data, settings)
    ordered = _in_time_order(data, train)
    store.record(ordered)
    pairwise = pairwise_model(data, store, ordered, seed)
    pw_ab = pairwise.pair_proba(store.chooser, store.partner)
    pw_ba = pairwise.pair_proba(store.partner, store.chooser)
    lgbm_ab, lgbm_ba = _plain_lightgbm(data, train, seed)
    scores = {
        "random": np.random.default_rng(seed).random(len(test)),
        "popularity": survey.forward["partner_popularity"].to_numpy()[test],
        "one_sided": p_ab,
        "reciprocal": reciprocal_score(p_ab, p_ba, "harmonic"),
        "lgbm_harmonic": reciprocal_score(lgbm_ab[test], lgbm_ba[test], "harmonic"),
        "pairwise": reciprocal_score(pw_ab[test], pw_ba[test], pairwise.combine),
        "matchwise": _matchwise_at_once(store, test, pw_ab, pw_ba, pairwise.model_type),
    }
    sizes = {"train_rows": len(train), "model": survey.model.kind_,
             "features": list(survey.model.columns_),
             "pairwise_chosen": pairwise.chosen_}  # fmt: skip
    return test, scores, sizes


def pairwise_model(
    data: SpeedDatingData, store: _Store, rows: np.ndarray, seed: int
) -> PairwiseRecommender:
    """The pairwise people model fitted on ``rows``' decisions (in time order) and the
    profiles as :func:`~matchwise.data.speed_dating.users_frame` stores them: what
    ``matchwise train pairwise`` fits on a store loaded with ``matchwise load speed-dating``."""
    ids = store.ids
    swipes = InteractionSet(
        user_ids=ids,
        item_ids=ids,
        users=store.chooser[rows],
        items=store.partner[rows],
        labels=data.dec[rows].astype(np.float32),
        timestamps=np.arange(len(rows)),
        user_features=users_frame(data.view),
    )
    return PairwiseRecommender(seed=seed).fit(swipes)


def _plain_lightgbm(
    data: SpeedDatingData, train: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The peer the issue measured: LightGBM on both people's raw survey answers (and the
    pair columns), P(iid says yes to pid) and P(pid says yes to iid) on every row."""
    people = person_table(data.view)
    columns = [c for c in (*DEMOGRAPHIC_COLUMNS, *INTERESTS, *SURVEY_COLUMNS) if c in people]
    answers = people[columns].to_numpy(np.float64)
    chooser = people.index.get_indexer(data.view["iid"])
    partner = people.index.get_indexer(data.view["pid"])
    pair = np.column_stack([data.int_corr, data.samerace])

    def design(c: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.column_stack([answers[c], answers[p], pair])

    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.03, num_leaves=15,
                               min_child_samples=30, subsample=0.8, subsample_freq=1,
                               colsample_bytree=0.8, reg_lambda=5.0, n_jobs=1,
                               random_state=seed, verbose=-1)  # fmt: skip
    model.fit(design(chooser, partner)[train], data.dec[train])
    forward = np.asarray(model.predict_proba(design(chooser, partner)))[:, 1]
    backward = np.asarray(model.predict_proba(design(partner, chooser)))[:, 1]
    return forward, backward


def _holdout_pairs(frame: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """True for rows whose unordered pair is held out (both directions together)."""
    lo = np.minimum(frame["iid"].to_numpy(), frame["pid"].to_numpy())
    hi = np.maximum(frame["iid"].to_numpy(), frame["pid"].to_numpy())
    keys = lo * 1_000_003 + hi
    unique = np.unique(keys)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(share * len(unique))))
    held = rng.choice(unique, size=n_test, replace=False)
    return np.isin(keys, held)


# --- figures -----------------------------------------------------------------------------------
def _figures(
    data: SpeedDatingData, rows: np.ndarray, scores: dict[str, np.ndarray], k: int
) -> dict[str, dict[str, float]]:
    match, decision = data.match[rows], data.dec[rows] == 1
    groups = data.view["iid"].to_numpy()[rows]
    out: dict[str, dict[str, float]] = {}
    for name, s in scores.items():
        out[name] = {
            "decision_auc": _auc(decision, s),
            "match_auc": _auc(match, s),
            f"ndcg@{k}": round(grouped_ndcg(groups, s, match, k).mean, 4),
        }
    return out


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return round(auc(labels, scores), 4) if 0 < labels.sum() < len(labels) else float("nan")


def _by_third(
    data: SpeedDatingData, rows: np.ndarray, scores: dict[str, np.ndarray]
) -> dict[str, list[float]]:
    """Match AUC over the dates of each third of their evening (by round)."""
    assert data.rounds is not None
    last = pd.Series(data.rounds).groupby(data.wave).transform("max").to_numpy()
    third = np.minimum((3 * (data.rounds[rows] - 1)) // last[rows], 2).astype(np.int64)
    match = data.match[rows]
    return {
        name: [_auc(match[third == t], s[third == t]) for t in range(3)]
        for name, s in scores.items()
    }


def auc_shares(labels: np.ndarray, scores: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Each unit's share of the AUC, so that their mean is the AUC: the placements among
    all negatives (ties half) of the unit's positives, summed, times units / positives."""
    labels = np.asarray(labels, dtype=bool)
    negatives = np.sort(scores[~labels])
    positives = scores[labels]
    if len(negatives) == 0 or len(positives) == 0:
        raise InvalidInput("an AUC needs both positives and negatives")
    below = np.searchsorted(negatives, positives, "left")
    ties = np.searchsorted(negatives, positives, "right") - below
    placement = (below + 0.5 * ties) / len(negatives)
    _, unit = np.unique(units, return_inverse=True)
    n_units = int(unit.max()) + 1
    sums = np.bincount(unit.ravel()[labels], weights=placement, minlength=n_units)
    return sums * n_units / len(positives)


def _paired(
    data: SpeedDatingData, rows: np.ndarray, scores: dict[str, np.ndarray], seed: int
) -> dict[str, dict[str, float]]:
    """matchwise's match AUC minus each peer's, 95% paired bootstrap over the held-out
    people (the choosers)."""
    match = data.match[rows]
    if not 0 < match.sum() < len(match):
        return {}
    people = data.view["iid"].to_numpy()[rows]
    mine = auc_shares(match, scores["matchwise"], people)
    out = {}
    for name, s in scores.items():
        if name in ("matchwise", "random"):
            continue
        interval = paired_bootstrap(mine, auc_shares(match, s, people), n=2000, seed=seed)
        out[f"matchwise - {name}"] = {
            "match_auc_difference": round(interval.difference, 4),
            "low": round(interval.low, 4),
            "high": round(interval.high, 4),
        }
    return out


def _split_result(
    data: SpeedDatingData,
    rows: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    k: int,
    seed: int,
    train_waves: Sequence[int] | None = None,
    test_waves: Sequence[int] | None = None,
    thirds: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if train_waves is not None and test_waves is not None:
        out["split"] = _split_name(train_waves, test_waves)
        out["train_waves"], out["test_waves"] = list(train_waves), list(test_waves)
    out["test_rows"] = len(rows)
    out["test_matches"] = int(data.match[rows].sum() // 2)
    out["results"] = _figures(data, rows, scores, k)
    if thirds:
        out["match_auc_by_third"] = _by_third(data, rows, scores)
    out["paired"] = _paired(data, rows, scores, seed)
    return out


def run_speed_dating_benchmark(
    path: str | Path,
    seed: int = 42,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    test_share: float = 0.2,
    model: str = "auto",
    survey_model: str = "lightgbm",
    k: int = 5,
    details: bool = False,
    settings: Settings | None = None,
    pair_seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run the chosen protocols (:data:`PROTOCOLS`) on the Speed Dating CSV at ``path``.

    Returns ``{"dataset", "protocols": {name: {"splits": [...]}}, "settings"}``; each split
    has ``results`` (``{scorer: {"decision_auc", "match_auc", "ndcg@5"}}``), its size and
    ``paired`` (matchwise's match AUC minus each peer's, with a 95% interval); the replay's
    splits add ``match_auc_by_third``. With ``pair`` among them, ``results`` is also at the
    top level, as before the other protocols existed (``details`` adds sizes, the model
    kind and its features). ``model`` is the pair protocol's survey model (``auto``:
    logistic under 2,000 training rows), ``survey_model`` the other protocols'.
    ``settings`` gives the blend weights matchwise scores with (default: ``Settings()``).
    ``pair_seeds``: the pair protocol once per seed (default: ``seed`` alone), each a split,
    with ``summary``: each scorer's mean, standard deviation, lowest and highest figure.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise InvalidInput(f"unknown protocol {unknown[0] if unknown else ''!r}; "
                           f"use {', '.join(PROTOCOLS)}")  # fmt: skip
    settings = settings or Settings()
    data = SpeedDatingData.read(path)
    out: dict[str, Any] = {"dataset": data.name, "protocols": {}}
    if "pair" in protocols:
        splits = []
        for i, pair_seed in enumerate(pair_seeds or (seed,)):
            rows, scores, sizes = pair_scores(data, settings=settings, seed=pair_seed,
                                              test_share=test_share, kind=model)  # fmt: skip
            split = _split_result(data, rows, scores, k=k, seed=pair_seed)
            split["split"] = f"{test_share:.0%} of pairs, seed {pair_seed}"
            split["seed"] = pair_seed
            split["pairwise_chosen"] = sizes["pairwise_chosen"]
            splits.append(split)
            if i == 0:
                out["results"] = split["results"]
                if details:
                    out["details"] = {"rows": len(data.view),
                                      "people": len(person_table(data.view)),
                                      "test_rows": len(rows),
                                      "test_matches": split["test_matches"], **sizes}  # fmt: skip
        out["protocols"]["pair"] = {"splits": splits, "summary": _over_seeds(splits)}
    for name, scorer, thirds in (("new-event", new_event_scores, False),
                                 ("replay", replay_scores, True)):  # fmt: skip
        if name not in protocols:
            continue
        if name == "replay" and data.rounds is None:
            raise InvalidInput(f"{data.name}: the replay needs the 'order' column on every row")
        splits = []
        for train_waves, test_waves in wave_splits(data.waves()):
            rows, scores = scorer(data, train_waves, test_waves, settings=settings, seed=seed,
                                  kind=survey_model)  # fmt: skip
            result = _split_result(data, rows, scores, k=k, seed=seed, thirds=thirds,
                                   train_waves=train_waves, test_waves=test_waves)  # fmt: skip
            splits.append(result)
        out["protocols"][name] = {"splits": splits}
    out["settings"] = {"blend": settings.blend.model_dump(),
                       "reciprocal_mode": settings.reciprocal_mode}  # fmt: skip
    out["provenance"] = provenance(seed, data=path)
    log.info("speed dating benchmark on %s: %s", data.name, out["protocols"])
    return out


def _over_seeds(splits: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Each scorer's figures over the splits: mean, standard deviation, min and max."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scorer in splits[0]["results"]:
        out[scorer] = {}
        for metric in splits[0]["results"][scorer]:
            values = np.array([s["results"][scorer][metric] for s in splits], dtype=np.float64)
            out[scorer][metric] = {"mean": round(float(values.mean()), 4),
                                   "std": round(float(values.std()), 4),
                                   "min": round(float(values.min()), 4),
                                   "max": round(float(values.max()), 4)}  # fmt: skip
    return out


# --- the table ---------------------------------------------------------------------------------
_SHORT = {"pair": "pair", "new-event": "new event", "replay": "replay"}
_ORDER = ("random", "popularity", "one_sided", "reciprocal", "lgbm_harmonic", "pairwise",
          "reference", "matchwise")  # fmt: skip


def render_tables(result: dict[str, Any]) -> list[Table]:
    """The protocols side by side (one column per split; each cell match AUC, then
    decision AUC), then the replay's match AUC by third of the evening and matchwise's
    differences with their intervals."""
    columns = [(name, split) for name, protocol in result["protocols"].items()
               for split in protocol["splits"]]  # fmt: skip
    found = {s for _, split in columns for s in split["results"]}
    scorers = [s for s in _ORDER if s in found] + sorted(found - set(_ORDER))
    main = Table(
        title=f"speed dating: {result['dataset']}",
        caption="each cell: match AUC / decision AUC; matchwise = serving's people blend",
    )
    main.add_column("scorer", no_wrap=True)
    for name, split in columns:
        main.add_column(f"{_SHORT[name]}\n{split.get('split', '')}", justify="right")
    for scorer in scorers:
        cells = []
        for _, split in columns:
            row = split["results"].get(scorer)
            cells.append(f"{row['match_auc']:.3f} / {row['decision_auc']:.3f}" if row else "")
        main.add_row(scorer, *cells)
    tables = [main]
    pair = result["protocols"].get("pair")
    if pair and len(pair["splits"]) > 1:
        seeds = ", ".join(str(s["seed"]) for s in pair["splits"])
        summary = Table(title=f"pair protocol over seeds {seeds}: mean ± sd (min-max)")
        summary.add_column("scorer", no_wrap=True)
        for metric in ("match_auc", "ndcg@5", "decision_auc"):
            summary.add_column(metric, justify="right")
        for scorer in [s for s in scorers if s in pair["summary"]]:
            summary.add_row(scorer, *(
                "{mean:.3f} ± {std:.3f} ({min:.3f}-{max:.3f})".format(**pair["summary"][scorer][m])
                for m in ("match_auc", "ndcg@5", "decision_auc")))  # fmt: skip
        tables.append(summary)
    replay = result["protocols"].get("replay")
    if replay:
        thirds = Table(title="replay: match AUC by third of the evening (early / middle / late)")
        thirds.add_column("scorer", no_wrap=True)
        for split in replay["splits"]:
            thirds.add_column(split["split"], justify="right")
        for scorer in replay["splits"][0]["match_auc_by_third"]:
            thirds.add_row(scorer, *(" / ".join(f"{v:.3f}" for v in s["match_auc_by_third"][scorer])
                                     for s in replay["splits"]))  # fmt: skip
        tables.append(thirds)
    paired = Table(
        title="matchwise's match AUC minus each peer's (95% paired bootstrap over people)"
    )
    paired.add_column("split", no_wrap=True)
    paired.add_column("against")
    paired.add_column("difference [95%]", justify="right")
    for name, split in columns:
        for against, d in split["paired"].items():
            interval = f"{d['match_auc_difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            where = f"{_SHORT[name]} {split.get('split', '')}"
            paired.add_row(where, against.split(" - ")[1], interval)
    tables.append(paired)
    return tables
