"""Structured compatibility between people (Patra's data_match), vectorised over candidates.

Hard filters need *both* sides' stated preferences to fit: gender/seeking, age range and
distance. Soft scores rank what passes: age gap, distance, shared hobbies. Every distance
here is between grid cells (:func:`location_cell`), never between exact positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.errors import InvalidInput

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0  # along a meridian: 111.2 km
#: Side of a location cell in km (the ``location_cell_km`` setting's default).
DEFAULT_LOCATION_CELL_KM = 1.5
UNKNOWN_GENDER_BIT = 62
ALL_GENDERS = np.int64((1 << 63) - 1)


def haversine_km(
    lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in km; broadcasts; NaN where a coordinate is missing."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def location_cell(
    lat: np.ndarray | float, lon: np.ndarray | float, cell_km: float = DEFAULT_LOCATION_CELL_KM
) -> tuple[np.ndarray, np.ndarray]:
    """The centre of the ~``cell_km``-square grid cell holding each position (NaN stays NaN).

    Matching sees positions only as these centres. An exact distance, or any smooth
    function of one (a score, a max-distance filter, a rounded figure), lets anyone who
    sets their own position freely trilaterate a person to metres; distances between cell
    centres tell them at most which cell the person is in. The grid is near-equal-area:
    rows of 180°/n latitude (~``cell_km`` tall), each cut into a whole number of columns
    ~``cell_km`` wide at the row's centre, so columns widen in degrees with 1/cos(latitude),
    a row around a pole has a few wedge cells, and the ±180° seam is a column edge
    (longitude 180 is in the same cell as -180).
    """
    if not (math.isfinite(cell_km) and cell_km > 0):
        raise InvalidInput(f"cell_km must be a positive number, got {cell_km}")
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    rows = max(1, round(180.0 * KM_PER_DEGREE / cell_km))
    row_deg = 180.0 / rows
    row = np.clip(np.floor((lat + 90.0) / row_deg), 0, rows - 1)  # +90 is the top row
    centre_lat = -90.0 + (row + 0.5) * row_deg
    ring_km = 2.0 * math.pi * EARTH_RADIUS_KM * np.cos(np.radians(centre_lat))
    columns = np.maximum(1.0, np.round(ring_km / cell_km))
    col_deg = 360.0 / columns
    col = np.minimum(np.floor(np.mod(lon + 180.0, 360.0) / col_deg), columns - 1)
    centre_lon = -180.0 + (col + 0.5) * col_deg
    return centre_lat, centre_lon


@dataclass
class ProfileArrays:
    """Profiles as column arrays: the form every vectorised compatibility function takes.

    Genders are bit positions; ``seeking`` is a bitmask of acceptable genders (all bits
    set when a person states no preference). Missing numbers are NaN. ``latitude`` and
    ``longitude`` are the centres of ``cell_km`` cells (:func:`location_cell`), never
    the positions people sent.
    """

    ids: np.ndarray
    age: np.ndarray
    gender_bit: np.ndarray
    seeking_mask: np.ndarray
    age_min: np.ndarray
    age_max: np.ndarray
    max_distance_km: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    tags: sp.csr_matrix
    tag_vocabulary: list[str]
    gender_codes: dict[str, int]
    cell_km: float = DEFAULT_LOCATION_CELL_KM
    #: ``tags`` as one 64-bit word a row (:func:`tag_words`), None when they do not fit
    tag_bits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        cell_km: float = DEFAULT_LOCATION_CELL_KM,
        codes: dict[str, int] | None = None,
        vocabulary: list[str] | None = None,
    ) -> ProfileArrays:
        """Build from a users frame (columns as in ``schemas.UserIn``; missing ones are NaN).

        The one place positions become cells (``cell_km``, the ``location_cell_km``
        setting): every distance matching computes (filters, scores, reasons) is then
        between cells, the requesting user's own position included. ``codes`` and
        ``vocabulary``: the gender bits and tag columns of profiles these rows are to join
        (:meth:`appended`), kept as they are and extended by names new here.
        """
        n = len(frame)

        def col(name: str) -> pd.Series:
            return frame[name] if name in frame.columns else pd.Series([None] * n, dtype=object)

        def num(name: str) -> np.ndarray:
            return pd.to_numeric(col(name), errors="coerce").to_numpy(dtype=np.float64)

        genders = col("gender").fillna("").astype(str).str.lower().to_numpy()
        seeking_lists = [
            list(s) if isinstance(s, list | tuple | np.ndarray) else [] for s in col("seeking")
        ]
        names = {g for g in genders if g} | {s.lower() for lst in seeking_lists for s in lst}
        codes = dict(codes or {})
        for name in sorted(names - set(codes)):  # a bit each while bits last
            if len(codes) < UNKNOWN_GENDER_BIT:
                codes[name] = len(codes)
        gender_bit = np.array(
            [codes.get(g, UNKNOWN_GENDER_BIT) if g else UNKNOWN_GENDER_BIT for g in genders],
            dtype=np.int64,
        )
        seeking = np.empty(n, dtype=np.int64)
        for i, lst in enumerate(seeking_lists):
            mask = 0
            for s in lst:
                if s.lower() in codes:
                    mask |= 1 << codes[s.lower()]
            seeking[i] = mask if lst else ALL_GENDERS
        tag_lists = [
            [str(t).lower() for t in t_list]
            if isinstance(t_list, list | tuple | np.ndarray)
            else []
            for t_list in col("tags")
        ]
        if vocabulary is not None:  # the given columns first, then the tags new here
            known = set(vocabulary)
            vocabulary = [*vocabulary, *sorted({t for lst in tag_lists for t in lst} - known)]
        tags, vocab = tag_matrix(tag_lists, vocabulary)
        latitude, longitude = location_cell(num("latitude"), num("longitude"), cell_km)
        return cls(
            ids=frame["id"].astype(str).to_numpy(),
            age=num("age"),
            gender_bit=gender_bit,
            seeking_mask=seeking,
            age_min=num("age_min"),
            age_max=num("age_max"),
            max_distance_km=num("max_distance_km"),
            latitude=latitude,
            longitude=longitude,
            tags=tags,
            tag_vocabulary=vocab,
            gender_codes=codes,
            cell_km=cell_km,
            tag_bits=tag_words(tags, len(vocab)),
        )

    def appended(self, frame: pd.DataFrame) -> ProfileArrays:
        """These profiles followed by the rows of ``frame`` (a new catalogue: this one is
        not changed). Genders and tags new in ``frame`` get bits and columns after the
        existing ones, so every existing row keeps its encoding: a gender nobody named
        before is in no one's stated wishes, and in every "no preference" mask already."""
        more = ProfileArrays.from_frame(frame, self.cell_km, self.gender_codes,
                                        self.tag_vocabulary)  # fmt: skip
        width = len(more.tag_vocabulary)
        old = sp.csr_matrix((self.tags.data, self.tags.indices, self.tags.indptr),
                            shape=(len(self), width))  # fmt: skip
        tags = sp.vstack([old, more.tags], format="csr")
        bits = None
        if self.tag_bits is not None and more.tag_bits is not None:
            bits = np.concatenate([self.tag_bits, more.tag_bits])
        elif width <= 64:
            bits = tag_words(tags, width)

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(self, name), getattr(more, name)])

        return ProfileArrays(
            ids=joined("ids"), age=joined("age"), gender_bit=joined("gender_bit"),
            seeking_mask=joined("seeking_mask"), age_min=joined("age_min"),
            age_max=joined("age_max"), max_distance_km=joined("max_distance_km"),
            latitude=joined("latitude"), longitude=joined("longitude"), tags=tags,
            tag_vocabulary=more.tag_vocabulary, gender_codes=more.gender_codes,
            cell_km=self.cell_km, tag_bits=bits,
        )  # fmt: skip


def tag_matrix(
    tag_lists: Sequence[Sequence[str]], vocabulary: list[str] | None = None
) -> tuple[sp.csr_matrix, list[str]]:
    """Binary rows x vocabulary matrix of tags; with a vocabulary, unknown tags drop out."""
    if vocabulary is None:
        vocabulary = sorted({t for tags in tag_lists for t in tags})
    index = {t: i for i, t in enumerate(vocabulary)}
    rows, cols = [], []
    for r, tags in enumerate(tag_lists):
        for t in set(tags):
            j = index.get(t)
            if j is not None:
                rows.append(r)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(tag_lists), len(vocabulary)))
    return matrix, vocabulary


def tag_words(tags: sp.csr_matrix, vocabulary_size: int) -> np.ndarray | None:
    """Each row's tags as one bit each of a 64-bit word, or None when the vocabulary (or a
    tag count) does not fit one: a pair's shared tags are then a popcount of an AND, not a
    sparse row slice and product (~1 CPU-ms a person at a million). Built with the
    profiles, so no request pays for it."""
    if vocabulary_size > 64 or (tags.nnz and tags.data.max() != 1):
        return None
    rows = np.repeat(np.arange(tags.shape[0]), np.diff(tags.indptr))
    bits = np.zeros(tags.shape[0], dtype=np.uint64)
    np.bitwise_or.at(bits, rows, np.left_shift(np.uint64(1), tags.indices.astype(np.uint64)))
    return bits


def within(value: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """value in [low, high], where a missing bound or a missing value never excludes: a
    comparison with NaN is false, so only a known value outside a known bound is."""
    return ~((value < low) | (value > high))


def ages_fit(p: ProfileArrays, user: int, candidates: np.ndarray) -> np.ndarray:
    """True where user and candidate are each in the age range the other asks for."""
    c = candidates
    return within(p.age[c], p.age_min[user], p.age_max[user]) & within(
        p.age[user], p.age_min[c], p.age_max[c]
    )


def distances_fit(
    p: ProfileArrays, user: int, candidates: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """True where ``dist`` (km, user to each candidate) is within both maximum distances;
    an unknown distance or two unset maxima never exclude."""
    limit = np.fmin(p.max_distance_km[candidates], p.max_distance_km[user])  # NaN: both NaN
    return np.isnan(dist) | np.isnan(limit) | (dist <= limit)


def mutual_preference_mask(p: ProfileArrays, user: int, candidates: np.ndarray) -> np.ndarray:
    """True where user and candidate each fit the other's gender, age and distance wishes."""
    c = candidates
    wants_them = (p.seeking_mask[user] >> p.gender_bit[c]) & 1 == 1
    wants_user = (p.seeking_mask[c] >> p.gender_bit[user]) & 1 == 1
    dist = haversine_km(p.latitude[user], p.longitude[user], p.latitude[c], p.longitude[c])
    return (
        wants_them & wants_user & ages_fit(p, user, c) & distances_fit(p, user, c, dist)
        & (c != user)
    )  # fmt: skip


@dataclass
class SoftScores:
    """Per-candidate soft compatibility signals, each in [0, 1]."""

    shared_tags: np.ndarray  # count of shared hobbies
    jaccard: np.ndarray
    age_fit: np.ndarray
    distance_km: np.ndarray
    proximity: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return 0.5 * self.jaccard + 0.25 * self.age_fit + 0.25 * self.proximity


def soft_scores(
    p: ProfileArrays,
    user: int | np.ndarray,
    candidates: np.ndarray,
    age_scale: float = 10.0,
    distance_scale_km: float = 50.0,
    distance_km: np.ndarray | None = None,
) -> SoftScores:
    """Shared hobbies (Jaccard), closeness in age and in distance, for one user's candidates
    (``user`` a row), or for pairs (``user`` a row per candidate: many users' candidates
    scored at once, each pair exactly as alone). ``distance_km``: each pair's
    :func:`haversine_km`, when the caller has it (the people index's walk does)."""
    bits = p.tag_bits
    if bits is not None:  # the sparse path's float32 counts, from 64-bit words
        theirs_bits = bits[candidates]
        shared = np.bitwise_count(theirs_bits & bits[user]).astype(np.float32)
        sizes = np.bitwise_count(theirs_bits).astype(np.float32)
        union = sizes + np.float32(np.bitwise_count(bits[user])) - shared
    elif np.ndim(user):  # pairs: the same float32 counts, row by row
        mine, theirs = p.tags[user], p.tags[candidates]
        shared = np.asarray(theirs.multiply(mine).sum(axis=1), dtype=np.float32).ravel()
        sizes = np.asarray(theirs.sum(axis=1), dtype=np.float32).ravel()
        union = sizes + np.asarray(mine.sum(axis=1), dtype=np.float32).ravel() - shared
    else:
        user_tags = p.tags[user]
        theirs = p.tags[candidates]  # one row slice (each costs O(candidates)), used twice
        shared = np.asarray((theirs @ user_tags.T).todense()).ravel()
        sizes = np.asarray(theirs.sum(axis=1)).ravel()
        union = sizes + user_tags.sum() - shared
    jaccard = np.divide(shared, union, out=np.zeros_like(shared, dtype=np.float64), where=union > 0)
    gap = np.abs(p.age[candidates] - p.age[user])
    age_fit = np.where(np.isnan(gap), 0.5, np.exp(-gap / age_scale))
    dist = distance_km
    if dist is None:
        dist = haversine_km(
            p.latitude[user], p.longitude[user], p.latitude[candidates], p.longitude[candidates]
        )
    proximity = np.where(np.isnan(dist), 0.5, np.exp(-dist / distance_scale_km))
    return SoftScores(shared, jaccard, age_fit, dist, proximity)
