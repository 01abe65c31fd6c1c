"""Dataset building: label, negative-sample, split, snapshot (frames in, frames out).

The snapshot is a folder of Parquet files plus ``manifest.json``; its version is a hash
of its content, so the same store and options give the same version. User ids in a
snapshot are keyed hashes (HMAC under ``settings.hash_secret``), never raw ids; in the
people domain the candidates are users too, so they are hashed the same way. The manifest
records its domain and a keyed hash of a fixed probe (``id_key``), so training can tell
whether the snapshot's ids are this deployment's (:func:`check_fits`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from matchwise.actions import ActionRule
from matchwise.data import splits
from matchwise.errors import InvalidInput
from matchwise.hashing import hash_id, hash_ids
from matchwise.models.base import InteractionSet

Domain = Literal["items", "people"]
SplitName = Literal["temporal", "global_temporal", "random", "leave_last_out"]
RATING_POSITIVE = 4.0  # explicit ratings at or above this count as positives
NEGATIVE_SAMPLE = "negative_sample"
#: The probe whose keyed hash is the manifest's ``id_key``: it tells which hash secret the
#: ids are under without telling the secret (the snapshot already holds such hashes).
ID_KEY_PROBE = "matchwise dataset snapshot"
#: The columns each Parquet file of a snapshot must have for training to read it.
SNAPSHOT_COLUMNS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("train", "valid", "test"),
                    ("user_id", "item_id", "label", "positive", "timestamp")),
    "users": ("id",),
    "items": ("id",),
}  # fmt: skip


#: What a column of distinct ids becomes before it is spread over the rows (a keyed hash).
IdKey = Callable[[np.ndarray], pd.api.extensions.ExtensionArray]


def label_interactions(
    frame: pd.DataFrame,
    table: dict[str, ActionRule],
    rating_positive: float = RATING_POSITIVE,
    rating_max: float = 5.0,
) -> pd.DataFrame:
    """One row per (user, item): the strongest label, summed weight, last time.

    Actions whose label is None (impressions, searches) are not training signals and
    drop out; ``rate`` events use their value (``value / rating_max``, positive at
    ``rating_positive`` and above). The action is the one of the strongest label's
    latest event; rows come in time order, then user id, then the order in which their
    pairs first appear among the events sorted by label and time. Vectorised over
    integer pair keys: a million events collapse in about a second.
    """
    return _labelled(frame, table, rating_positive, rating_max)


def _labelled(
    frame: pd.DataFrame,
    table: dict[str, ActionRule],
    rating_positive: float = RATING_POSITIVE,
    rating_max: float = 5.0,
    user_key: IdKey | None = None,
    item_key: IdKey | None = None,
) -> pd.DataFrame:
    """:func:`label_interactions`, its ``user_id`` (``item_id``) column ``user_key``
    (``item_key``) of the distinct ids taken row by row: each distinct id keyed once, and
    no column of ten million raw id strings made only to be replaced (issue 21)."""
    columns = ["user_id", "item_id", "label", "weight", "positive", "timestamp", "action"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    codes, actions = pd.factorize(frame["action"])
    rules = [table.get(a) for a in actions]
    # per distinct action, then by code; the last slot serves a missing action (code -1)
    label_of = np.array([np.nan if r is None or r.label is None else r.label for r in rules]
                        + [np.nan])  # fmt: skip
    weight_of = np.array([0.0 if r is None else r.weight for r in rules] + [0.0])
    positive_of = np.array([r is not None and r.positive for r in rules] + [False])
    labels, weights, positive = label_of[codes], weight_of[codes], positive_of[codes]
    value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(np.float64)
    rated = (frame["action"].eq("rate") & frame["value"].notna()).to_numpy()
    labels = np.where(rated, np.clip(value / rating_max, 0, 1), labels)
    positive = np.where(rated, value >= rating_positive, positive)
    keep = ~np.isnan(labels)
    if not keep.any():
        return pd.DataFrame(columns=columns)
    times = pd.DatetimeIndex(pd.to_datetime(frame["occurred_at"], utc=True)[keep])
    user_codes, user_ids = pd.factorize(frame["user_id"].to_numpy()[keep], sort=True)
    item_codes, item_ids = pd.factorize(frame["item_id"].to_numpy()[keep], sort=True)
    labels, weights, positive = labels[keep], weights[keep], positive[keep]
    action_codes = codes[keep]
    stamp = times.asi8  # UTC instants in the column's unit
    # each event's place among all events sorted by (label, time), input order on ties
    by_label = np.lexsort((stamp, labels))
    place = np.empty(len(labels), dtype=np.int64)
    place[by_label] = np.arange(len(labels))
    pair = user_codes.astype(np.int64) * max(len(item_ids), 1) + item_codes
    order = np.lexsort((place, pair))  # by pair, then by (label, time): the last is the best
    pair_sorted = pair[order]
    starts = np.flatnonzero(np.concatenate([[True], pair_sorted[1:] != pair_sorted[:-1]]))
    ends = np.concatenate([starts[1:], [len(order)]]) - 1
    best = order[ends]
    first_place = place[order[starts]]
    out_stamp = np.maximum.reduceat(stamp[order], starts)
    out_user = user_codes[best]
    final = np.lexsort((first_place, out_user, out_stamp))  # time, user id, first appearance
    best, out_stamp, out_user = best[final], out_stamp[final], out_user[final]
    weight_sum = np.add.reduceat(weights[order], starts)[final]
    any_positive = np.logical_or.reduceat(positive[order], starts)[final]
    stamps = pd.DatetimeIndex(out_stamp.view(f"datetime64[{times.unit}]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "user_id": (user_ids if user_key is None else user_key(user_ids)).take(out_user),
            "item_id": (item_ids if item_key is None else item_key(item_ids)).take(
                item_codes[best]
            ),
            "label": labels[best],
            "weight": np.clip(weight_sum, 0.1, None),
            "positive": any_positive.astype(bool),
            "timestamp": stamps,
            "action": actions.take(action_codes[best]),
        }
    )


def sample_negatives(
    frame: pd.DataFrame,
    items: Sequence[Any],
    per_positive: int,
    strategy: Literal["uniform", "popularity"] = "uniform",
    seed: int = 42,
) -> pd.DataFrame:
    """For each positive, ``per_positive`` items the user never touched, label 0.

    ``popularity`` draws proportional to interaction counts (harder negatives, closer to
    what the user was shown); ``uniform`` draws from the whole catalogue. Every user's
    candidates come from one seeded draw, checked against sorted (user, item) keys: no
    Python loop over users, so a million interactions take about a second.
    """
    if per_positive <= 0 or frame.empty:
        return frame.iloc[0:0]
    if strategy not in ("uniform", "popularity"):
        raise InvalidInput(f"negative strategy must be uniform or popularity, not {strategy!r}")
    rng = np.random.default_rng(seed)
    catalogue = pd.Index(pd.unique(pd.Series(list(items))))
    n_items = len(catalogue)
    counts = frame["item_id"].value_counts().reindex(catalogue, fill_value=0).to_numpy(float)
    probs = (counts + 1.0) / (counts + 1.0).sum() if strategy == "popularity" else None
    # users with a positive, in order of their first positive (their negatives come in
    # that order); each user's seen items as sorted (user, catalogue item) keys
    positives = frame[frame["positive"].to_numpy(dtype=bool)]
    users = pd.Index(pd.unique(positives["user_id"]))
    user_of_positive = users.get_indexer(positives["user_id"])
    n_positive = np.bincount(user_of_positive, minlength=len(users))
    owner = users.get_indexer(frame["user_id"])
    column = catalogue.get_indexer(frame["item_id"])
    known = (owner >= 0) & (column >= 0)
    seen_keys = np.unique(owner[known].astype(np.int64) * n_items + column[known])
    distinct_seen = np.zeros(len(users), dtype=np.int64)
    np.add.at(distinct_seen, seen_keys // max(n_items, 1), 1)
    need = per_positive * n_positive
    room = distinct_seen < n_items  # a user who has seen everything gets none
    draws = np.where(room, need * 2 + 4, 0)
    user_of_draw = np.repeat(np.arange(len(users)), draws)
    drawn = rng.choice(n_items, size=int(draws.sum()), p=probs)
    keys = user_of_draw.astype(np.int64) * n_items + drawn
    at = np.searchsorted(seen_keys, keys).clip(max=max(len(seen_keys) - 1, 0))
    fresh = seen_keys[at] != keys if len(seen_keys) else np.ones(len(keys), dtype=bool)
    user_of_draw, drawn = user_of_draw[fresh], drawn[fresh]
    # the first `need` fresh draws of each user, in draw order
    start = np.searchsorted(user_of_draw, np.arange(len(users)))
    rank = np.arange(len(user_of_draw)) - start[user_of_draw]
    taken = rank < need[user_of_draw]
    user_of_draw, drawn, rank = user_of_draw[taken], drawn[taken], rank[taken]
    # the k-th negative of a user takes the time of the user's (k mod n)-th positive
    by_user = np.argsort(user_of_positive, kind="stable")
    first_positive = np.concatenate([[0], np.cumsum(n_positive)[:-1]])
    times = positives["timestamp"].iloc[
        by_user[first_positive[user_of_draw] + rank % n_positive[user_of_draw]]
    ]
    return pd.DataFrame(
        {
            "user_id": users.take(user_of_draw),
            "item_id": catalogue.take(drawn),
            "label": 0.0,
            "weight": 1.0,
            "positive": False,
            "timestamp": pd.to_datetime(times.reset_index(drop=True), utc=True),
            "action": NEGATIVE_SAMPLE,
        }
    )


@dataclass
class Dataset:
    """A loaded snapshot: labelled splits over one id universe, plus side features."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def interaction_sets(self) -> tuple[InteractionSet, InteractionSet, InteractionSet]:
        """Train (all labels), validation and test (positives only, for ranking metrics)."""
        user_ids = self.users["id"].to_numpy()
        item_ids = self.items["id"].to_numpy()
        kwargs = {"user_features": self.users, "item_features": self.items}

        def make(frame: pd.DataFrame, positives_only: bool) -> InteractionSet:
            part = frame[frame["positive"]] if positives_only else frame
            seconds = pd.to_datetime(part["timestamp"], utc=True).dt.as_unit("s").astype("int64")
            data = part.assign(timestamp=seconds)
            return InteractionSet.from_frame(data, user_ids, item_ids, **kwargs)

        return make(self.train, False), make(self.valid, True), make(self.test, True)


def make_dataset(
    raw: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame | None,
    table: dict[str, ActionRule],
    secret: str,
    domain: Domain = "items",
    negative_samples: int = 0,
    negative_strategy: Literal["uniform", "popularity"] = "uniform",
    min_interactions: int = 1,
    split: SplitName = "temporal",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> Dataset:
    """Raw events (``user_id, item_id, action, value, occurred_at``), profiles and items
    (None in the people domain, where the candidates are the users) → a labelled, split
    dataset in memory (:func:`save_dataset` writes it)."""

    # privacy: keyed hashes instead of raw user ids, everywhere in the snapshot. Hashed
    # while labelling, each distinct id once, before the split (which reads ids only for
    # equality and first appearance, so its parts are the same) and the negatives (drawn
    # from the hashed catalogue in the same order), not each part's columns (issue 21)
    def keyed(ids: np.ndarray) -> pd.api.extensions.ExtensionArray:
        return hash_ids(secret, pd.Series(ids)).array

    labelled = _labelled(raw, table, user_key=keyed,
                         item_key=keyed if domain == "people" else None)  # fmt: skip
    if min_interactions > 1 and not labelled.empty:
        counts = labelled["user_id"].map(labelled["user_id"].value_counts())
        labelled = labelled[counts >= min_interactions].reset_index(drop=True)
    if labelled.empty or not labelled["positive"].any():
        raise InvalidInput(
            f"no positive interactions in the {domain} domain: nothing to learn from "
            "(load or generate data first, or check the action table)"
        )
    users = users.assign(id=hash_ids(secret, users["id"]))
    items = _people_as_items(users) if items is None or domain == "people" else items
    if split == "temporal":
        parts = splits.temporal_split(labelled, ratios)
    elif split == "global_temporal":
        parts = splits.global_temporal_split(labelled, ratios)
    elif split == "random":
        parts = splits.random_split(labelled, ratios, seed=seed)
    elif split == "leave_last_out":
        parts = splits.leave_last_out(labelled)
    else:
        raise InvalidInput(f"unknown split {split!r}")
    train, valid, test = (p.reset_index(drop=True) for p in parts)
    if negative_samples:
        negatives = sample_negatives(train, items["id"], negative_samples, negative_strategy, seed)
        train = pd.concat([train, negatives], ignore_index=True)
    manifest = {
        "domain": domain,
        "id_key": id_key(secret),
        "created_at": datetime.now(UTC).isoformat(),
        "split": split,
        "ratios": list(ratios),
        "negative_samples": negative_samples,
        "negative_strategy": negative_strategy,
        "min_interactions": min_interactions,
        "seed": seed,
        "stats": dataset_stats(train, valid, test, len(users), len(items)),
    }
    dataset = Dataset(train, valid, test, users, items, manifest)
    dataset.manifest["version"] = _content_version(dataset)
    return dataset


def _people_as_items(users: pd.DataFrame) -> pd.DataFrame:
    return users.rename(columns={"bio": "text"}).assign(category=users["gender"])


def dataset_stats(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int
) -> dict[str, Any]:
    """Seed 003's "Dataset Statistics": sizes, label distribution, coverage."""
    every = pd.concat([train, valid, test], ignore_index=True)
    density = len(every) / max(n_users * n_items, 1)
    return {
        "rows": {"train": len(train), "valid": len(valid), "test": len(test)},
        "users": n_users,
        "items": n_items,
        "users_with_data": int(every["user_id"].nunique()),
        "items_with_data": int(every["item_id"].nunique()),
        "item_coverage": round(every["item_id"].nunique() / max(n_items, 1), 4),
        "density": round(density, 6),
        "positives": int(every["positive"].sum()),
        "labels": {f"{k:.1f}": int(v) for k, v in every["label"].round(1).value_counts().items()},
        "actions": {str(k): int(v) for k, v in every["action"].value_counts().items()},
    }


def _content_version(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    for part in (dataset.train, dataset.valid, dataset.test):
        digest.update(pd.util.hash_pandas_object(part[["user_id", "item_id", "label"]],
                                                 index=False).values.tobytes())  # fmt: skip
    for key in ("split", "ratios", "negative_samples", "negative_strategy", "seed"):
        digest.update(json.dumps(dataset.manifest[key]).encode())
    return "ds-" + digest.hexdigest()[:12]


def save_dataset(dataset: Dataset, folder: str | Path) -> Path:
    """Write the snapshot: train/valid/test/users/items Parquet and manifest.json."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test", "users", "items"):
        getattr(dataset, name).to_parquet(out / f"{name}.parquet", index=False)
    (out / "manifest.json").write_text(json.dumps(dataset.manifest, indent=2, default=str))
    return out


def load_dataset(folder: str | Path) -> Dataset:
    """Read a snapshot written by :func:`save_dataset`; a missing or unreadable file, or a
    missing column, is named."""
    src = Path(folder)
    manifest_path = src / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInput(f"{src} is not a dataset snapshot (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"dataset snapshot {src}: cannot read manifest.json ({exc})") from exc
    if not isinstance(manifest, dict):
        raise InvalidInput(f"dataset snapshot {src}: manifest.json must hold a JSON object")
    parts = {}
    for name, columns in SNAPSHOT_COLUMNS.items():
        path = src / f"{name}.parquet"
        if not path.is_file():
            raise InvalidInput(f"dataset snapshot {src} is missing {path.name}")
        try:
            parts[name] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"dataset snapshot {src}: cannot read {path.name} ({exc})") from exc
        missing = [c for c in columns if c not in parts[name].columns]
        if missing:
            raise InvalidInput(f"dataset snapshot {src}: {path.name} has no {', '.join(missing)}")
    return Dataset(manifest=manifest, **parts)


def id_key(secret: str) -> str:
    """The manifest's ``id_key`` under ``secret``: equal keys, equal id hashes."""
    return hash_id(secret, ID_KEY_PROBE)


def check_fits(dataset: Dataset, secret: str, domain: str | None = None) -> Domain:
    """The dataset's domain, once it is known to fit a deployment hashing under ``secret``
    (and ``domain``, when one is asked for). A model trained on ids hashed under another
    secret would never find its users at serving time, so such a snapshot is refused."""
    manifest = dataset.manifest
    name = manifest.get("version") or "the dataset"
    own = manifest.get("domain")
    if own not in ("items", "people"):
        raise InvalidInput(f"dataset {name}: its manifest names no domain (items or people); "
                           "build snapshots with `matchwise dataset build`")  # fmt: skip
    if domain is not None and domain != own:
        raise InvalidInput(f"dataset {name} is a snapshot of the {own} domain, not {domain}: "
                           f"leave out --domain, or build a {domain} snapshot "
                           f"(`matchwise dataset build --domain {domain}`)")  # fmt: skip
    key = manifest.get("id_key")
    if not isinstance(key, str):
        raise InvalidInput(f"dataset {name} does not record which hash secret its ids are "
                           "under (an older snapshot): rebuild it with "
                           "`matchwise dataset build`")  # fmt: skip
    if not hmac.compare_digest(key, id_key(secret)):
        raise InvalidInput(f"dataset {name} was built under another hash secret, so its user "
                           "ids are not this deployment's: rebuild it against this store with "
                           "`matchwise dataset build`")  # fmt: skip
    return "items" if own == "items" else "people"
