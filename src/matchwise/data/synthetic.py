"""Deterministic synthetic data for both domains, with a hidden truth that models can learn.

Real interaction logs are private, so tests, demos and benchmarks run on generated data
whose latent causes (attractiveness, lifestyle, interests, popularity) are known and kept
in ``bundle.meta["truth"]``: a test can check that a model recovers them. Everything is
drawn from one seeded ``numpy.random.Generator`` and vectorised, so the same seed gives
identical frames and a million interactions take seconds.

Profile distributions (age, sex, orientation, drinks, smokes, education) are calibrated on
the OkCupid profiles of Kim & Escobedo-Land (2015, revised 2021) and hard-coded below; the
data file itself is not needed at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.data.importers import stable_event_ids
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import haversine_km

#: Fixed default origin so that the same seed gives the same timestamps on any day.
DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)
#: How many days of activity a generator writes unless told otherwise.
WINDOW_DAYS = 60

_NS_PER_DAY = 86_400 * 1_000_000_000

# --- calibration constants (OkCupid SF profiles, n=59,946) ------------------------------

#: Age histogram, ages 18-65 (left-closed bins), shares of profiles.
_AGE_BINS = np.array([18, 22, 26, 30, 35, 40, 45, 50, 55, 60, 66])
_AGE_SHARES = np.array(
    [0.0541, 0.1881, 0.2357, 0.2106, 0.1211, 0.0779, 0.0452, 0.0277, 0.0201, 0.0150]
)
#: Genders: OkCupid has 60% men / 40% women; a small non-binary share is added.
GENDERS = ("woman", "man", "nonbinary")
_GENDER_SHARES = np.array([0.40, 0.57, 0.03])
#: Orientation by sex (straight, gay, bisexual).
_ORIENTATION = {0: np.array([0.851, 0.066, 0.083]), 1: np.array([0.867, 0.111, 0.022])}
_DRINKS = ("socially", "rarely", "often", "not at all", "very often", "desperately")
_DRINKS_SHARES = np.array([0.734, 0.104, 0.091, 0.057, 0.009, 0.005])
_SMOKES = ("no", "sometimes", "when drinking", "yes", "trying to quit")
_SMOKES_SHARES = np.array([0.806, 0.069, 0.056, 0.041, 0.028])
_EDUCATION = (
    "college/university",
    "masters",
    "two-year college",
    "phd",
    "high school",
    "law school",
    "med school",
)
_EDUCATION_SHARES = np.array([0.609, 0.212, 0.059, 0.046, 0.033, 0.028, 0.013])

#: Real cities (name, latitude, longitude, relative size); people scatter around them.
CITIES: tuple[tuple[str, float, float, float], ...] = (
    ("San Francisco", 37.7749, -122.4194, 1.0),
    ("New York", 40.7128, -74.0060, 0.9),
    ("London", 51.5074, -0.1278, 0.8),
    ("Berlin", 52.5200, 13.4050, 0.6),
    ("Paris", 48.8566, 2.3522, 0.55),
    ("Toronto", 43.6532, -79.3832, 0.45),
    ("Chicago", 41.8781, -87.6298, 0.4),
    ("Sydney", -33.8688, 151.2093, 0.35),
)

# --- people: lifestyle clusters and hobbies ----------------------------------------------

#: Latent lifestyles; each owns a block of the hobby vocabulary and a way of talking.
LIFESTYLES: dict[str, tuple[str, ...]] = {
    "outdoors": ("hiking", "climbing", "camping", "cycling", "surfing", "skiing"),
    "fitness": ("running", "yoga", "gym", "swimming", "tennis", "boxing"),
    "creative": ("painting", "photography", "writing", "pottery", "guitar", "theatre"),
    "nightlife": ("dancing", "cocktails", "festivals", "karaoke", "concerts", "djing"),
    "intellectual": ("reading", "chess", "podcasts", "history", "philosophy", "museums"),
    "homebody": ("cooking", "baking", "gardening", "wine", "movies", "coffee"),
    "geek": ("gaming", "coding", "anime", "board games", "sci-fi"),
}
_LIFESTYLE_NAMES = tuple(LIFESTYLES)
_LIFESTYLE_SHARES = np.array([0.17, 0.16, 0.14, 0.15, 0.12, 0.16, 0.10])
HOBBIES: tuple[str, ...] = tuple(h for block in LIFESTYLES.values() for h in block)

_BIO_OPENERS: dict[str, tuple[str, ...]] = {
    "outdoors": (
        "Happiest on a mountain trail with a thermos of coffee.",
        "Weekends are for getting out of the city and into the wild.",
        "I plan my year around trips to the mountains and the sea.",
        "Sunrise hikes, muddy boots and campfire stories.",
    ),
    "fitness": (
        "Early riser, training for my next race.",
        "The gym is my therapy and my morning run is my meditation.",
        "Always up for a workout buddy who pushes me.",
        "Healthy habits, strong coffee, long runs.",
    ),
    "creative": (
        "Artist at heart, always sketching something.",
        "I make things: pictures, songs, the occasional mess.",
        "Looking at the world through a camera lens.",
        "Half my flat is an art studio and I like it that way.",
    ),
    "nightlife": (
        "Life is short, dance more.",
        "Find me at the front row of the next gig.",
        "Cocktail enthusiast who knows every rooftop bar in town.",
        "Friday nights are for live music and good company.",
    ),
    "intellectual": (
        "Bookworm with strong opinions about footnotes.",
        "Curious about everything, from ancient history to black holes.",
        "Ask me about the last book I could not put down.",
        "Museum on Sunday, debate club on Monday.",
    ),
    "homebody": (
        "Best dinner in town is at my place.",
        "Cosy nights in, homemade pasta and a good film.",
        "My plants and my sourdough starter both depend on me.",
        "Weekend farmers market, slow mornings, good wine.",
    ),
    "geek": (
        "Gamer, coder and proud nerd.",
        "I will beat you at board games but I will be nice about it.",
        "Sci-fi marathons and late-night side projects.",
        "Debugging code by day, saving the galaxy by night.",
    ),
}
_BIO_HOBBY_TEMPLATES = (
    "I love {0} and {1}.",
    "Big fan of {0}, {1} and {2}.",
    "Into {0}, {1} and the occasional bit of {2}.",
    "You will usually find me doing {0} or {1}.",
    "My favourite things: {0}, {1}, {2}.",
    "Spare time goes to {0} and {1}.",
)
_BIO_LOOKING: dict[str, tuple[str, ...]] = {
    "outdoors": (
        "Looking for a partner in adventure.",
        "Swipe right if you can keep up on a trail.",
    ),
    "fitness": ("Looking for someone who likes an active life.", "Bonus points if you run."),
    "creative": ("Looking for someone who loves art and ideas.", "Tell me your favourite album."),
    "nightlife": ("Looking for someone to dance with.", "Let's grab a drink and see."),
    "intellectual": ("Looking for great conversation.", "Recommend me a book."),
    "homebody": ("Looking for someone to cook with.", "Come for the food, stay for the film."),
    "geek": ("Looking for a player two.", "Tell me your favourite starship."),
}
_BIO_HABITS = {
    "no": "Non-smoker.",
    "yes": "I smoke, just so you know.",
    "socially": "Drinks socially.",
    "not at all": "I don't drink.",
}

# --- items: categories and tags ------------------------------------------------------------

EVENT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "music": ("live music", "jazz", "electronic", "classical", "open mic"),
    "tech": ("python", "ai", "web development", "startups", "cybersecurity"),
    "sports": ("running", "football", "cycling", "basketball", "climbing"),
    "arts": ("painting", "photography", "theatre", "film", "design"),
    "food": ("cooking", "wine tasting", "street food", "vegan", "coffee"),
    "career": ("networking", "public speaking", "job fair", "leadership", "internships"),
    "science": ("astronomy", "biology", "robotics", "climate", "mathematics"),
    "outdoors": ("hiking", "camping", "kayaking", "bird watching", "gardening"),
    "social": ("board games", "language exchange", "trivia", "dancing", "volunteering"),
    "wellness": ("meditation", "yoga", "mental health", "nutrition", "mindfulness"),
}
STARTUP_CATEGORIES: dict[str, tuple[str, ...]] = {
    "fintech": ("payments", "banking", "crypto", "insurance", "lending"),
    "healthtech": ("telemedicine", "medical imaging", "wearables", "mental health", "pharma"),
    "edtech": ("online courses", "tutoring", "language learning", "assessment", "edu games"),
    "climate": ("solar", "batteries", "carbon capture", "recycling", "agritech"),
    "ai": ("machine learning", "computer vision", "nlp", "llm", "robotics"),
    "devtools": ("python", "rust", "cloud", "databases", "observability"),
    "consumer": ("mobile apps", "social network", "e-commerce", "fashion", "food delivery"),
    "marketplace": ("logistics", "real estate", "travel", "freelancing", "secondhand"),
    "biotech": ("genomics", "drug discovery", "synthetic biology", "diagnostics", "lab automation"),
    "gaming": ("game engines", "esports", "vr", "mobile games", "game design"),
}
_EVENT_NOUNS: dict[str, tuple[str, ...]] = {
    "music": ("Night", "Session", "Concert", "Jam"),
    "tech": ("Meetup", "Workshop", "Hackathon", "Talk"),
    "sports": ("Match", "Club Run", "Tournament", "Training"),
    "arts": ("Exhibition", "Workshop", "Screening", "Walk"),
    "food": ("Tasting", "Supper Club", "Market", "Class"),
    "career": ("Fair", "Breakfast", "Panel", "Mixer"),
    "science": ("Lecture", "Lab Day", "Night", "Talk"),
    "outdoors": ("Trip", "Day Out", "Weekend", "Walk"),
    "social": ("Evening", "Meetup", "Night", "Social"),
    "wellness": ("Retreat", "Session", "Circle", "Class"),
}
_EVENT_ADJECTIVES = (
    "Weekly",
    "Beginner-friendly",
    "Community",
    "Advanced",
    "Sunday",
    "Evening",
    "Open",
    "Spring",
    "Intro to",
    "Late",
)
_EVENT_TEXTS = (
    "Join us in {city} for a {cat} event all about {t0} and {t1}.",
    "A relaxed gathering for people who love {t0}. Expect {t1} and good company.",
    "{city}'s {cat} crowd meets again: {t0}, {t1} and plenty of time to talk.",
    "Whether you are new to {t0} or an old hand, this {cat} event has something for you.",
)
_EVENT_EXTRAS = (
    "Drinks and snacks provided.",
    "Free entry, limited places.",
    "Bring a friend.",
    "Hosted by local organisers.",
    "All levels welcome.",
)
_STARTUP_PREFIXES = (
    "Nova",
    "Quant",
    "Lyra",
    "Zen",
    "Flow",
    "Kai",
    "Astra",
    "Bright",
    "Deep",
    "Open",
)
_STARTUP_SUFFIXES = ("ly", "ify", "io", "labs", "works", "hub", "base", "stack")
_STARTUP_STAGES = ("pre-seed", "seed", "series A", "series B")
_STARTUP_ROLES = ("backend", "frontend", "data", "ml", "design", "product", "sales", "ops")
_STARTUP_TEXTS = (
    "{name} is a {stage} {cat} startup in {city} working on {t0} and {t1}.",
    "At {name} we build {cat} products around {t0}. Our stack touches {t1}.",
    "{name} ({stage}) is hiring people excited about {t0}, {t1} and {cat}.",
)

SIZE_PRESETS: dict[str, dict[str, dict[str, int]]] = {
    "people": {
        "small": {"n_users": 300, "n_swipes": 5_000},
        "medium": {"n_users": 2_000, "n_swipes": 50_000},
        "large": {"n_users": 20_000, "n_swipes": 1_000_000},
    },
    "items": {
        "small": {"n_users": 300, "n_items": 150, "n_interactions": 5_000},
        "medium": {"n_users": 2_000, "n_items": 1_000, "n_interactions": 50_000},
        "large": {"n_users": 20_000, "n_items": 5_000, "n_interactions": 1_000_000},
    },
}


# --- small helpers --------------------------------------------------------------------------


def _start(start: datetime | str | pd.Timestamp | None) -> pd.Timestamp:
    ts = pd.Timestamp(DEFAULT_START if start is None else start)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def window_start(
    anchor: date | datetime | str | None = None, days: float = WINDOW_DAYS
) -> pd.Timestamp:
    """The start of a ``days``-long window that ends on ``anchor`` (a date: its midnight
    UTC; default today), for data that should look current: its activity is past and
    part of its events are still to come, as a real app's are at that date."""
    end = pd.Timestamp.now(tz="UTC") if anchor is None else _start(pd.Timestamp(anchor))
    return end.normalize() - pd.Timedelta(days=days)


def _times(start: pd.Timestamp, day_offsets: np.ndarray) -> pd.Series:
    """Day offsets to UTC timestamps, truncated to whole seconds so they round-trip."""
    ns = np.round(day_offsets * 86_400).astype(np.int64) * 1_000_000_000
    return pd.Series((start.value + ns).astype("datetime64[ns]")).dt.tz_localize("UTC")


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x.astype(np.uint64)).astype(np.int64)


def _mask_lists(masks: np.ndarray, vocabulary: tuple[str, ...]) -> list[list[str]]:
    """Bitmasks to lists of names, in vocabulary order."""
    bits = ((masks[:, None] >> np.arange(len(vocabulary), dtype=np.uint64)) & np.uint64(1)) > 0
    vocab = np.array(vocabulary, dtype=object)
    return [vocab[row].tolist() for row in bits]


def _categorical(rng: np.random.Generator, shares: np.ndarray, size: int) -> np.ndarray:
    cum = np.cumsum(shares / shares.sum())
    return np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(shares) - 1)


def _row_categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) non-negative weight matrix; -1 where a row is all zero."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    pick = (cum < (rng.random(len(weights)) * total)[:, None]).sum(axis=1)
    return np.where(total > 0, np.minimum(pick, weights.shape[1] - 1), -1)


def _sample_in_groups(
    rng: np.random.Generator,
    group: np.ndarray,
    members: np.ndarray,
    bounds: np.ndarray,
    cum_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one member per requested group; -1 where the group is empty.

    ``members`` lists entities sorted by group, ``bounds[g]:bounds[g + 1]`` is group g's
    slice, and ``cum_weights`` (optional) their cumulative sampling weights in that order.
    """
    lo, hi = bounds[group], bounds[group + 1]
    empty = hi <= lo
    u = rng.random(len(group))
    if cum_weights is None:
        pos = lo + np.floor(u * (hi - lo)).astype(np.int64)
    else:
        base = np.where(lo > 0, cum_weights[np.maximum(lo - 1, 0)], 0.0)
        top = cum_weights[np.maximum(hi - 1, 0)]
        pos = np.searchsorted(cum_weights, base + u * (top - base), side="right")
    pos = np.clip(pos, lo, np.maximum(hi - 1, lo))
    return np.where(empty, -1, members[np.minimum(pos, len(members) - 1)])


def _groups(keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_groups + 1))
    return order, bounds


def _pair_noise(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """Symmetric, deterministic 'chemistry' in [-1, 1] for unordered pairs (splitmix64)."""
    lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (lo << np.uint64(32)) ^ hi ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53 * 2.0 - 1.0


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def _interactions_frame(
    user_ids: np.ndarray,
    actions: np.ndarray,
    start: pd.Timestamp,
    occurred_at: pd.Series,
    salt: str,
    item_ids: np.ndarray | None = None,
    target_user_ids: np.ndarray | None = None,
) -> pd.DataFrame:
    """The interactions, with event ids from their times relative to ``start``: the same
    seed gives the same ids whatever the window's start, so writing a set again on another
    day (anchored to that day) adds no events twice."""
    n = len(user_ids)
    none = np.full(n, None, dtype=object)
    frame = pd.DataFrame(
        {
            "event_id": pd.Series(np.empty(n, dtype=object), dtype=object),
            "user_id": pd.Series(user_ids, dtype=object),
            "item_id": pd.Series(none if item_ids is None else item_ids, dtype=object),
            "target_user_id": pd.Series(
                none if target_user_ids is None else target_user_ids, dtype=object
            ),
            "action": pd.Series(actions, dtype=object),
            "value": np.full(n, np.nan),
            "occurred_at": occurred_at.reset_index(drop=True),
        }
    )
    frame["event_id"] = stable_event_ids(frame.assign(occurred_at=frame["occurred_at"] - start),
                                         salt=salt)  # fmt: skip
    return frame


# --- people --------------------------------------------------------------------------------


def _people_profiles(
    rng: np.random.Generator, n: int, n_cities: int, days: float
) -> dict[str, np.ndarray]:
    """Profiles plus the hidden traits that drive swiping."""
    bins = _categorical(rng, _AGE_SHARES, n)
    age = rng.integers(_AGE_BINS[bins], _AGE_BINS[bins + 1])
    gender = _categorical(rng, _GENDER_SHARES, n)

    # seeking as a bitmask over GENDERS (bit 0 woman, 1 man, 2 nonbinary)
    orient = np.zeros(n, dtype=np.int64)
    for g in (0, 1):
        idx = np.flatnonzero(gender == g)
        orient[idx] = _categorical(rng, _ORIENTATION[g], len(idx))
    opposite = np.where(gender == 0, 2, 1)
    same = np.left_shift(1, np.minimum(gender, 2))
    bi = np.where(rng.random(n) < 0.2, 7, 3)
    seek = np.select([orient == 0, orient == 1], [opposite, same], default=bi)
    nb = gender == 2
    seek[nb] = np.array([7, 1, 2, 4])[_categorical(rng, np.array([0.5, 0.2, 0.2, 0.1]), nb.sum())]

    # preferred age window around own age; men skew younger, women older
    years = age - 18
    lo_gap = np.maximum(1.0, rng.normal(3 + 0.3 * years, 2.0)) + 2.0 * (gender == 1)
    hi_gap = np.maximum(1.0, rng.normal(4 + 0.15 * years, 2.0)) + 3.0 * (gender == 0)
    age_min = np.clip(np.round(age - lo_gap), 18, age).astype(np.int64)
    age_max = np.clip(np.round(age + hi_gap), age, 99).astype(np.int64)
    max_distance = np.array([5, 10, 25, 50, 100, 160], dtype=float)[
        _categorical(rng, np.array([0.03, 0.12, 0.3, 0.3, 0.15, 0.1]), n)
    ]

    city_sizes = np.array([c[3] for c in CITIES[:n_cities]])
    city = _categorical(rng, city_sizes, n)
    lat0 = np.array([c[1] for c in CITIES])[city]
    lon0 = np.array([c[2] for c in CITIES])[city]
    radius = rng.gamma(2.0, 3.5, n)  # km from the centre, mean 7 km
    angle = rng.random(n) * 2 * np.pi
    # rounded here (about 1 m) so that distances recomputed from the frame agree exactly
    lat = np.round(lat0 + radius * np.sin(angle) / 111.2, 5)
    lon = np.round(lon0 + radius * np.cos(angle) / (111.2 * np.cos(np.radians(lat0))), 5)

    # lifestyle clusters own blocks of hobbies; tags mostly come from one's own cluster
    n_clusters = len(_LIFESTYLE_NAMES)
    sizes = np.array([len(v) for v in LIFESTYLES.values()])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cluster = _categorical(rng, _LIFESTYLE_SHARES, n)
    second = (cluster + rng.integers(1, n_clusters, n)) % n_clusters
    n_hobbies = np.clip(3 + rng.poisson(1.5, n), 3, 8)
    hobbies = np.zeros(n, dtype=np.uint64)
    for slot in range(8):
        source = _categorical(rng, np.array([0.65, 0.25, 0.10]), n)
        c = np.select([source == 0, source == 1], [cluster, second], rng.integers(0, n_clusters, n))
        h = offsets[c] + np.floor(rng.random(n) * sizes[c]).astype(np.int64)
        bit = np.left_shift(np.uint64(1), h.astype(np.uint64))
        hobbies |= np.where(slot < n_hobbies, bit, np.uint64(0))

    attractiveness = rng.normal(0.0, 1.0, n)
    pickiness = rng.normal(0.0, 1.0, n)
    activity = rng.lognormal(0.0, 0.8, n)
    join = np.where(rng.random(n) < 0.55, 0.0, rng.random(n) * 0.75 * days)
    photo_count = np.clip(np.round(3.0 + 1.1 * attractiveness + rng.normal(0, 1.3, n)), 0, 9)
    height_cm = np.round(
        np.where(gender == 1, 178, np.where(gender == 0, 165, 171)) + rng.normal(0, 7, n)
    )
    return {
        "age": age,
        "gender": gender,
        "seek": seek.astype(np.int64),
        "age_min": age_min,
        "age_max": age_max,
        "max_distance": max_distance,
        "city": city,
        "lat": lat,
        "lon": lon,
        "cluster": cluster,
        "hobbies": hobbies,
        "attractiveness": attractiveness,
        "pickiness": pickiness,
        "activity": activity,
        "join": join,
        "smokes": _categorical(rng, _SMOKES_SHARES, n),
        "drinks": _categorical(rng, _DRINKS_SHARES, n),
        "education": _categorical(rng, _EDUCATION_SHARES, n),
        "photo_count": photo_count.astype(np.int64),
        "height_cm": height_cm.astype(np.int64),
    }


def _bios(rng: np.random.Generator, p: dict[str, np.ndarray], tags: list[list[str]]) -> list[str]:
    """Bios from cluster-flavoured sentences plus the person's hobbies, in varied orders."""
    n = len(tags)
    opener = rng.integers(0, 4, n)
    hobby_tpl = rng.integers(0, len(_BIO_HOBBY_TEMPLATES), n)
    looking = rng.integers(0, 2, n)
    layout = rng.integers(0, 4, n)
    habit = rng.random(n)
    perm = rng.random((n, 8)).argsort(axis=1)
    out: list[str] = []
    for i in range(n):
        lifestyle = _LIFESTYLE_NAMES[p["cluster"][i]]
        hob = [tags[i][j] for j in perm[i] if j < len(tags[i])] + ["travel", "music", "food"]
        parts = [
            _BIO_OPENERS[lifestyle][opener[i]],
            _BIO_HOBBY_TEMPLATES[hobby_tpl[i]].format(*hob[:3]),
            _BIO_LOOKING[lifestyle][looking[i]],
        ]
        if habit[i] < 0.3:
            smoke = _SMOKES[p["smokes"][i]]
            drink = _DRINKS[p["drinks"][i]]
            extra = _BIO_HABITS.get(smoke) or _BIO_HABITS.get(drink)
            if extra:
                parts.append(extra)
        if layout[i] == 1:
            parts = parts[1:] + parts[:1]
        elif layout[i] == 2:
            parts = parts[:2]
        elif layout[i] == 3:
            parts = [parts[1], parts[0]] + parts[2:]
        out.append(" ".join(parts))
    return out


def _prefers(
    p: dict[str, np.ndarray], i: np.ndarray, j: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """Does i's stated preference admit j (gender, age window, distance)?"""
    gender_ok = (p["seek"][i] >> p["gender"][j]) & 1 == 1
    age_ok = (p["age"][j] >= p["age_min"][i]) & (p["age"][j] <= p["age_max"][i])
    return gender_ok & age_ok & (dist <= p["max_distance"][i])


def _people_pairs(
    rng: np.random.Generator, p: dict[str, np.ndarray], n_swipes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who sees whom: a feed of nearby people in one's preferences, mostly mutual.

    Returns swiper, candidate and the relaxation level (0 mutual fit, 1 one-sided fit,
    2 same city, 3 anywhere) of each unique directed pair. Relaxed levels only fill in
    when the strict feed runs dry, as a real app widens the search.
    """
    n = len(p["age"])
    n_cities = int(p["city"].max()) + 1
    g_members, g_bounds = _groups(p["city"] * 3 + p["gender"], n_cities * 3)
    c_members, c_bounds = _groups(p["city"], n_cities)
    group_size = np.diff(g_bounds).reshape(n_cities, 3)
    act_cum = np.cumsum(p["activity"])
    act_cum /= act_cum[-1]

    keys_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    level_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int8)]
    have = 0
    seen = np.zeros(0, dtype=np.int64)
    accept_rate = 0.3
    for level, rounds in ((0, 8), (1, 3), (2, 3), (3, 3)):
        for _ in range(rounds):
            need = n_swipes - have
            if need <= 0:
                break
            size = int(min(need / max(accept_rate, 0.02) * 1.3 + 256, 30 * n_swipes + 1024))
            i = np.minimum(np.searchsorted(act_cum, rng.random(size)), n - 1)
            if level == 3:
                j = rng.integers(0, n, size)
            elif level == 2 or (level == 1 and rng.random() < 0.5):
                j = _sample_in_groups(rng, p["city"][i], c_members, c_bounds)
            else:
                sought = ((p["seek"][i][:, None] >> np.arange(3)) & 1) * group_size[p["city"][i]]
                g = _row_categorical(rng, sought.astype(float))
                j = _sample_in_groups(rng, p["city"][i] * 3 + np.maximum(g, 0), g_members, g_bounds)
                j[g < 0] = -1
                if level == 0:
                    # a little noise: some of the feed ignores preferences (same city)
                    noise = rng.random(size) < 0.04
                    j[noise] = _sample_in_groups(rng, p["city"][i[noise]], c_members, c_bounds)
            ok = (j >= 0) & (j != i)
            i, j = i[ok], j[ok]
            dist = haversine_km(p["lat"][i], p["lon"][i], p["lat"][j], p["lon"][j])
            if level == 0:
                fwd = _prefers(p, i, j, dist)
                back = _prefers(p, j, i, dist)
                leak = rng.random(len(i)) < 0.05
                keep = fwd & (back | leak)
                keep |= rng.random(len(i)) < 0.01  # rare out-of-preference cards
            elif level == 1:
                keep = _prefers(p, i, j, dist)
            else:
                keep = np.ones(len(i), dtype=bool)
            accept_rate = max(keep.mean() if len(keep) else 0.0, 0.01)
            key = i[keep].astype(np.int64) * n + j[keep]
            _, first = np.unique(key, return_index=True)
            key = key[np.sort(first)]
            new = key[~np.isin(key, seen)]
            seen = np.concatenate([seen, new])
            keys_parts.append(new)
            level_parts.append(np.full(len(new), level, dtype=np.int8))
            have += len(new)
    keys = np.concatenate(keys_parts)[:n_swipes]
    levels = np.concatenate(level_parts)[:n_swipes]
    return keys // n, keys % n, levels


def generate_people(
    n_users: int = 1000,
    n_swipes: int = 20_000,
    seed: int = 42,
    start: datetime | str | pd.Timestamp | None = None,
    days: float = WINDOW_DAYS,
    *,
    n_cities: int | None = None,
    name: str | None = None,
) -> DataBundle:
    """A dating population and its swipes (like / superlike / pass), domain ``people``.

    Whether i likes j follows a hidden utility: j's attractiveness, i's pickiness and
    gender-typical selectivity, and a symmetric compatibility (shared lifestyle and
    hobbies, age fit, distance, smoking, pair chemistry). Because compatibility is
    symmetric, likes are reciprocal more often than chance: matches are learnable.
    ``meta["truth"]["users"]`` holds the hidden traits, indexed by user id.

    The feed prefers mutual-preference pairs and widens (one-sided fit, same city,
    anywhere) only when a small population runs out of them; each directed pair is swiped
    at most once, so in the rare case that even the widened feed runs dry, fewer than
    ``n_swipes`` rows come back.
    """
    if n_users < 2:
        raise InvalidInput(f"n_users must be at least 2, got {n_users}")
    if n_swipes < 0 or n_swipes > n_users * (n_users - 1):
        raise InvalidInput(
            f"n_swipes must be between 0 and n_users*(n_users-1)={n_users * (n_users - 1)}, "
            f"got {n_swipes}"
        )
    if days <= 0:
        raise InvalidInput(f"days must be positive, got {days}")
    t0 = _start(start)
    rng = np.random.default_rng(seed)
    if n_cities is None:
        n_cities = int(np.clip(round(n_users / 300), 1, len(CITIES)))
    n_cities = int(np.clip(n_cities, 1, len(CITIES)))
    p = _people_profiles(rng, n_users, n_cities, days)
    tags = _mask_lists(p["hobbies"], HOBBIES)
    bios = _bios(rng, p, tags)
    ids = _ids("p", n_users)

    users = pd.DataFrame(
        {
            "id": ids,
            "age": p["age"],
            "gender": np.array(GENDERS, dtype=object)[p["gender"]],
            "seeking": [[GENDERS[b] for b in range(3) if m >> b & 1] for m in p["seek"]],
            "age_min": p["age_min"],
            "age_max": p["age_max"],
            "max_distance_km": p["max_distance"],
            "latitude": p["lat"],
            "longitude": p["lon"],
            "city": np.array([c[0] for c in CITIES], dtype=object)[p["city"]],
            "bio": bios,
            "tags": tags,
            "attributes": [
                {
                    "smokes": _SMOKES[s],
                    "drinks": _DRINKS[d],
                    "education": _EDUCATION[e],
                    "photo_count": int(c),
                    "height_cm": int(h),
                }
                for s, d, e, c, h in zip(
                    p["smokes"],
                    p["drinks"],
                    p["education"],
                    p["photo_count"],
                    p["height_cm"],
                    strict=True,
                )
            ],
        }
    )

    i, j, level = _people_pairs(rng, p, n_swipes)
    dist = haversine_km(p["lat"][i], p["lon"][i], p["lat"][j], p["lon"][j])
    mutual = _prefers(p, i, j, dist) & _prefers(p, j, i, dist)
    ideal = p["age"][i] + np.where(p["gender"][i] == 1, -1.5, 1.5)
    smoker = p["smokes"] != 0
    compat = (
        1.4 * (p["cluster"][i] == p["cluster"][j])
        + 0.5 * (np.minimum(_popcount(p["hobbies"][i] & p["hobbies"][j]), 4) - 0.8)
        - 0.07 * np.abs(p["age"][j] - ideal)
        - 0.6 * np.minimum(dist / p["max_distance"][i], 3.0)
        - 0.5 * (smoker[i] != smoker[j])
        + 2.0 * _pair_noise(i, j, seed)
    )
    selectivity = np.array([-1.0, 0.9, 0.0])[p["gender"][i]]
    base = selectivity - 0.7 * p["pickiness"][i] - 0.1 * p["attractiveness"][i]
    utility = base + 1.4 * p["attractiveness"][j] + compat
    noise = rng.logistic(0.0, 0.5, len(i))
    liked = utility + noise > 0
    superliked = liked & (utility + noise > 3.2) & (rng.random(len(i)) < 0.6)
    actions = np.where(superliked, "superlike", np.where(liked, "like", "pass")).astype(object)

    first = np.maximum(p["join"][i], p["join"][j])
    day = first + rng.random(len(i)) * (days - first)
    order = np.lexsort((np.arange(len(i)), day))
    i, j, day, actions, level = i[order], j[order], day[order], actions[order], level[order]
    mutual = mutual[order]
    interactions = _interactions_frame(
        ids[i], actions, t0, _times(t0, day), salt=f"people:{seed}", target_user_ids=ids[j]
    )

    truth = pd.DataFrame(
        {
            "attractiveness": p["attractiveness"],
            "pickiness": p["pickiness"],
            "lifestyle": np.array(_LIFESTYLE_NAMES, dtype=object)[p["cluster"]],
            "activity": p["activity"],
            "joined_day": p["join"],
        },
        index=pd.Index(ids, name="id"),
    )
    meta: dict[str, Any] = {
        "generator": "matchwise.data.synthetic.generate_people",
        "seed": seed,
        "params": {"n_users": n_users, "n_swipes": n_swipes, "days": days, "n_cities": n_cities},
        "start": t0,
        "now": t0 + pd.Timedelta(days=days),
        "truth": {"users": truth},
        "stats": {
            "like_rate": float(np.isin(actions, ["like", "superlike"]).mean()) if len(i) else 0.0,
            "mutual_preference_share": float(mutual.mean()) if len(i) else 1.0,
            "relaxed_swipes": int((level > 0).sum()),
        },
    }
    return DataBundle(
        users=users,
        items=_empty_items(),
        interactions=interactions,
        name=name or f"synthetic-people-{seed}",
        domain="people",
        meta=meta,
    )


def stream_people(
    n_users: int,
    n_swipes: int,
    seed: int = 42,
    start: datetime | str | pd.Timestamp | None = None,
    days: float = WINDOW_DAYS,
    *,
    block: int = 50_000,
) -> Iterator[DataBundle]:
    """A population too large to hold at once, as :func:`generate_people` blocks of about
    ``block`` people each, yielded one at a time (memory stays that of one block).

    Each block is a community of its own (its own seed; swipes stay inside it), living in
    the same cities as the others, so hard filters and distance cells see everyone mixed.
    Ids are global (``p0`` … ``p{n_users-1}``), event ids unique across blocks, and the
    swipes are shared out in proportion to the blocks' sizes.
    """
    if n_users < 2 or block < 2:
        raise InvalidInput(f"n_users and block must be at least 2, got {n_users}, {block}")
    n_blocks = max(1, -(-n_users // block))
    for k in range(n_blocks):
        lo, hi = k * n_users // n_blocks, (k + 1) * n_users // n_blocks
        swipes = (k + 1) * n_swipes // n_blocks - k * n_swipes // n_blocks
        part = generate_people(hi - lo, swipes, seed=seed * 100_003 + k, start=start, days=days,
                               n_cities=len(CITIES), name=f"synthetic-people-{seed}")  # fmt: skip
        ids = _ids("p", hi)[lo:]

        def renamed(column: pd.Series, ids: np.ndarray = ids) -> pd.Series:
            return pd.Series(ids[column.str.slice(1).astype(np.int64)], index=column.index)

        part.users["id"] = ids
        frame = part.interactions
        frame["user_id"] = renamed(frame["user_id"])
        frame["target_user_id"] = renamed(frame["target_user_id"])
        truth = part.meta["truth"]["users"]
        truth.index = pd.Index(ids, name="id")
        part.meta["block"] = {"index": k, "of": n_blocks, "first_user": lo}
        yield part


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=object)
            for c in ("id", "kind", "title", "text", "category", "city", "owner_id", "tags")
        }
        | {"starts_at": pd.Series(dtype="datetime64[ns, UTC]")}
        | {"attributes": pd.Series(dtype=object)}
    )


# --- items ---------------------------------------------------------------------------------


def _item_texts(
    rng: np.random.Generator,
    kind: str,
    cats: tuple[str, ...],
    category: np.ndarray,
    city: np.ndarray,
    tags: list[list[str]],
    remote: np.ndarray,
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Titles, descriptions and attributes from templates (the loop is per item, not event)."""
    n = len(category)
    r = rng.integers(0, 1_000_000, (n, 6))
    city_names = [c[0] for c in CITIES]
    titles, texts, attrs = [], [], []
    for k in range(n):
        cat = cats[category[k]]
        t = tags[k] + [cats[category[k]], "new friends"]
        where = city_names[city[k]]
        if kind == "startup":
            name = (
                _STARTUP_PREFIXES[r[k, 0] % len(_STARTUP_PREFIXES)]
                + _STARTUP_SUFFIXES[r[k, 1] % len(_STARTUP_SUFFIXES)]
            )
            stage = _STARTUP_STAGES[r[k, 2] % len(_STARTUP_STAGES)]
            titles.append(f"{name}: {t[0]} for {cat}")
            texts.append(
                _STARTUP_TEXTS[r[k, 3] % len(_STARTUP_TEXTS)].format(
                    name=name, stage=stage, cat=cat, city=where, t0=t[0], t1=t[1]
                )
            )
            roles = sorted({_STARTUP_ROLES[r[k, 4] % 8], _STARTUP_ROLES[r[k, 5] % 8]})
            attrs.append(
                {
                    "stage": stage,
                    "team_size": int(2 + r[k, 4] % 60),
                    "remote": bool(remote[k]),
                    "roles": roles,
                }
            )
        else:
            adj = _EVENT_ADJECTIVES[r[k, 0] % len(_EVENT_ADJECTIVES)]
            noun = _EVENT_NOUNS[cat][r[k, 1] % 4]
            titles.append(f"{adj} {t[0].title()} {noun}")
            text = _EVENT_TEXTS[r[k, 2] % len(_EVENT_TEXTS)].format(
                adj=adj.lower(), cat=cat, city=where, t0=t[0], t1=t[1]
            )
            texts.append(f"{text} {_EVENT_EXTRAS[r[k, 3] % len(_EVENT_EXTRAS)]}")
            free = r[k, 4] % 2 == 0
            attrs.append(
                {
                    "capacity": int(20 + r[k, 5] % 480),
                    "price": 0.0 if free else float(5 + r[k, 4] % 46),
                    "online": bool(r[k, 3] % 7 == 0),
                }
            )
    return titles, texts, attrs


def generate_items(
    n_users: int = 1000,
    n_items: int = 500,
    n_interactions: int = 20_000,
    seed: int = 42,
    kind: str = "event",
    start: datetime | str | pd.Timestamp | None = None,
    days: float = WINDOW_DAYS,
    *,
    n_owners: int | None = None,
    name: str | None = None,
) -> DataBundle:
    """Users with interests, items (events or startups) and a funnel of interactions.

    Each exposure (a view) of item i to user u has a hidden utility from u's true
    interests (tags and category affinity), same city, i's popularity (Zipf) and
    freshness; it then goes down a funnel: view, click, favorite/interest,
    register/apply, share, unregister, or dislike. Interests do not drift, so a
    time-ordered split is learnable. ``meta["truth"]`` holds users' true interests and
    items' popularity.
    """
    if kind not in ("event", "startup"):
        raise InvalidInput(f"kind must be 'event' or 'startup', got {kind!r}")
    if n_users < 1 or n_items < 1:
        raise InvalidInput(f"n_users and n_items must be positive, got {n_users}, {n_items}")
    if n_interactions < 0:
        raise InvalidInput(f"n_interactions must be >= 0, got {n_interactions}")
    if days <= 0:
        raise InvalidInput(f"days must be positive, got {days}")
    t0 = _start(start)
    rng = np.random.default_rng(seed)
    startup = kind == "startup"
    vocab_map = STARTUP_CATEGORIES if startup else EVENT_CATEGORIES
    cats = tuple(vocab_map)
    vocabulary = tuple(t for block in vocab_map.values() for t in block)
    n_cats, per_cat = len(cats), len(next(iter(vocab_map.values())))
    city_sizes = np.array([c[3] for c in CITIES])

    # items: category, tags tied to it, city, owner, life window and Zipf popularity
    category = rng.integers(0, n_cats, n_items)
    # 1-3 distinct tags of the item's own category first, then maybe one from elsewhere
    n_own = rng.integers(1, 4, n_items)
    own_pick = rng.random((n_items, per_cat)).argsort(axis=1)[:, :3] + (category * per_cat)[:, None]
    cross_cat = (category + rng.integers(1, n_cats, n_items)) % n_cats
    cross = cross_cat * per_cat + rng.integers(0, per_cat, n_items)
    has_cross = (rng.random(n_items) < 0.4) | (n_own == 1)
    item_tag_idx = [
        own_pick[k, : n_own[k]].tolist() + ([int(cross[k])] if has_cross[k] else [])
        for k in range(n_items)
    ]
    item_mask = np.array([sum(1 << t for t in tags) for tags in item_tag_idx], dtype=np.uint64)
    item_tags = [[vocabulary[t] for t in tags] for tags in item_tag_idx]
    item_city = _categorical(rng, city_sizes, n_items)
    n_owners = n_owners or max(1, n_items // 5)
    owner = rng.zipf(1.6, n_items) % n_owners
    popularity = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 0.8)
    popularity /= popularity.mean()
    quality = rng.normal(0.0, 0.5, n_items)
    if startup:
        published = rng.uniform(-30, days - 2, n_items)
        ends = np.full(n_items, float(days))
        starts_at = None
    else:
        published = rng.uniform(-14, days - 2, n_items)
        ends = published + rng.uniform(5, 45, n_items)
        starts_at = _times(t0, ends)
    win_lo = np.maximum(published, 0.0)
    win_hi = np.minimum(ends, float(days))
    live = win_hi - win_lo > 0.05
    # remote startups are as reachable as local ones; events are never remote here
    remote = (rng.random(n_items) < 0.33) & startup

    # users: true interests (category affinity, tags); stated tags are a noisy subset
    theta = rng.dirichlet(np.full(n_cats, 0.35), n_users)
    user_city = _categorical(rng, city_sizes, n_users)
    n_true = rng.integers(5, 9, n_users)
    true_mask = np.zeros(n_users, dtype=np.uint64)
    stated_mask = np.zeros(n_users, dtype=np.uint64)
    for slot in range(8):
        c = _row_categorical(rng, theta)
        tag = c * per_cat + rng.integers(0, per_cat, n_users)
        bit = np.where(slot < n_true, np.left_shift(np.uint64(1), tag.astype(np.uint64)), 0)
        true_mask |= bit.astype(np.uint64)
        stated_mask |= np.where(rng.random(n_users) < 0.7, bit, 0).astype(np.uint64)
    noise_tag = rng.integers(0, len(vocabulary), n_users).astype(np.uint64)
    add_noise = rng.random(n_users) < 0.3
    stated_mask |= np.where(add_noise, np.left_shift(np.uint64(1), noise_tag), 0).astype(np.uint64)
    cold = rng.random(n_users) < 0.05  # some users state no interests at all
    stated_mask[cold] = 0
    user_bias = rng.normal(0.0, 0.5, n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    join = np.where(rng.random(n_users) < 0.6, 0.0, rng.random(n_users) * 0.7 * days)

    # exposure sampling: global popular feed, local feed, interest-driven discovery
    weight = np.where(live, popularity * np.sqrt(np.maximum(win_hi - win_lo, 0.0)), 0.0)
    all_order = np.arange(n_items)
    all_cum = np.cumsum(weight)
    all_bounds = np.array([0, n_items])
    city_order, city_bounds = _groups(item_city, len(CITIES))
    city_cum = np.cumsum(weight[city_order])
    cat_order, cat_bounds = _groups(category, n_cats)
    cat_cum = np.cumsum(weight[cat_order])
    act_cum = np.cumsum(activity)
    act_cum /= act_cum[-1]

    events_per_exposure = 1.6
    exp_u: list[np.ndarray] = []
    exp_i: list[np.ndarray] = []
    seen = np.zeros(0, dtype=np.int64)
    have_events = 0.0
    for attempt in range(10):
        need = n_interactions - have_events
        if need <= 0 or all_cum[-1] <= 0:
            break
        size = int(need / events_per_exposure * 1.3 + 256)
        u = np.minimum(np.searchsorted(act_cum, rng.random(size)), n_users - 1)
        source = _categorical(rng, np.array([0.35, 0.3, 0.35]), size)
        it = _sample_in_groups(rng, np.zeros(size, dtype=np.int64), all_order, all_bounds, all_cum)
        s1 = source == 1
        it[s1] = _sample_in_groups(rng, user_city[u[s1]], city_order, city_bounds, city_cum)
        s2 = source == 2
        c = _row_categorical(rng, theta[u[s2]])
        it[s2] = _sample_in_groups(rng, c, cat_order, cat_bounds, cat_cum)
        fallback = it < 0
        it[fallback] = _sample_in_groups(
            rng, np.zeros(fallback.sum(), dtype=np.int64), all_order, all_bounds, all_cum
        )
        ok = (it >= 0) & (join[u] < win_hi[np.maximum(it, 0)])
        key = u[ok].astype(np.int64) * n_items + it[ok]
        if attempt < 7:  # one exposure per (user, item); repeats only if the pool runs dry
            _, first = np.unique(key, return_index=True)
            key = key[np.sort(first)]
            key = key[~np.isin(key, seen)]
            seen = np.concatenate([seen, key])
        exp_u.append(key // n_items)
        exp_i.append(key % n_items)
        have_events += len(key) * events_per_exposure
    u = np.concatenate(exp_u) if exp_u else np.zeros(0, dtype=np.int64)
    it = np.concatenate(exp_i) if exp_i else np.zeros(0, dtype=np.int64)
    n_exp = len(u)

    # when: inside the item's live window and after the user joined; fresher is likelier
    lo = np.maximum(win_lo[it], join[u])
    span = np.maximum(win_hi[it] - lo, 1e-3)
    t_view = lo + span * rng.beta(1.0, 1.8, n_exp)
    fresh = 1.0 - np.clip((t_view - published[it]) / np.maximum(ends[it] - published[it], 1), 0, 1)

    overlap = _popcount(true_mask[u] & item_mask[it])
    same_city = user_city[u] == item_city[it]
    utility = (
        -1.7
        + 0.7 * overlap
        + 3.5 * theta[u, category[it]]
        + 0.8 * (same_city | remote[it])
        + 0.3 * np.log(popularity[it])
        + 0.4 * fresh
        + quality[it]
        + user_bias[u]
    )

    def stage(threshold: float) -> np.ndarray:
        return utility + rng.logistic(0.0, 0.8, n_exp) > threshold

    impression = rng.random(n_exp) < 0.12
    click = stage(0.8)
    keep_act = stage(2.2) & click  # favorite (events) / interest (startups)
    commit = stage(2.4) & click  # register (events) / apply (startups)
    share = stage(3.4) & (commit | keep_act) & (rng.random(n_exp) < 0.5)
    dislike = ~click & (utility + rng.logistic(0.0, 0.8, n_exp) < -1.5) & (rng.random(n_exp) < 0.5)
    unregister = commit & (rng.random(n_exp) < 0.07) & (not startup)

    hi = win_hi[it]

    def after(t: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        return np.minimum(t + seconds / 86_400, np.maximum(hi - 1 / 86_400, t))

    t_click = after(t_view, rng.uniform(3, 90, n_exp))
    t_keep = after(t_click, rng.uniform(5, 300, n_exp))
    t_commit = after(t_click, rng.lognormal(np.log(600), 1.5, n_exp))
    t_share = after(np.maximum(t_keep, t_commit), rng.uniform(10, 3600, n_exp))
    t_unreg = after(t_commit, rng.random(n_exp) * np.maximum(hi - t_commit, 0) * 86_400)
    t_dislike = after(t_view, rng.uniform(2, 30, n_exp))
    t_impr = np.maximum(t_view - rng.uniform(1, 20, n_exp) / 86_400, lo)

    steps = [
        ("impression", impression, t_impr),
        ("view", np.ones(n_exp, dtype=bool), t_view),
        ("dislike", dislike, t_dislike),
        ("click", click, t_click),
        ("interest" if startup else "favorite", keep_act, t_keep),
        ("apply" if startup else "register", commit, t_commit),
        ("share", share, t_share),
        ("unregister", unregister, t_unreg),
    ]
    flags = np.stack([s[1] for s in steps], axis=1)  # (exposure, step), funnel order
    ex, st = np.nonzero(flags)  # row-major: exposures in order, steps in funnel order
    ex, st = ex[:n_interactions], st[:n_interactions]  # a cut chain keeps its prefix
    times = np.stack([s[2] for s in steps], axis=1)[ex, st]
    names = np.array([s[0] for s in steps], dtype=object)
    order = np.lexsort((st, ex, times))
    ex, st, times = ex[order], st[order], times[order]

    user_ids = _ids("u", n_users)
    prefix = "s" if startup else "e"
    item_ids = _ids(prefix, n_items)
    interactions = _interactions_frame(
        user_ids[u[ex]],
        names[st],
        t0,
        _times(t0, times),
        salt=f"items:{kind}:{seed}",
        item_ids=item_ids[it[ex]],
    )

    stated = _mask_lists(stated_mask, vocabulary)
    city_names = np.array([c[0] for c in CITIES], dtype=object)
    users = pd.DataFrame(
        {
            "id": user_ids,
            "city": city_names[user_city],
            "tags": stated,
            "bio": [f"Interested in {', '.join(t[:3])}." if t else None for t in stated],
            "attributes": [{"role": "developer" if startup else "student"} for _ in range(n_users)],
        }
    )
    titles, texts, attrs = _item_texts(rng, kind, cats, category, item_city, item_tags, remote)
    items = pd.DataFrame(
        {
            "id": item_ids,
            "kind": kind,
            "title": titles,
            "text": texts,
            "category": np.array(cats, dtype=object)[category],
            "city": city_names[item_city],
            "owner_id": np.array([f"{'founder' if startup else 'org'}{o}" for o in owner]),
            "starts_at": (
                pd.Series(pd.NaT, index=range(n_items), dtype="datetime64[ns, UTC]")
                if starts_at is None
                else starts_at
            ),
            "tags": item_tags,
            "attributes": attrs,
        }
    )

    truth_users = pd.DataFrame(
        {
            "top_category": np.array(cats, dtype=object)[theta.argmax(axis=1)],
            "true_tags": _mask_lists(true_mask, vocabulary),
            "activity": activity,
            "bias": user_bias,
            "joined_day": join,
        },
        index=pd.Index(user_ids, name="id"),
    )
    truth_items = pd.DataFrame(
        {
            "popularity": popularity,
            "quality": quality,
            "published_day": published,
            "live_from_day": win_lo,
            "live_to_day": win_hi,
        },
        index=pd.Index(item_ids, name="id"),
    )
    counts = interactions["action"].value_counts().to_dict()
    meta: dict[str, Any] = {
        "generator": "matchwise.data.synthetic.generate_items",
        "seed": seed,
        "kind": kind,
        "params": {
            "n_users": n_users,
            "n_items": n_items,
            "n_interactions": n_interactions,
            "days": days,
        },
        "start": t0,
        "now": t0 + pd.Timedelta(days=days),
        "truth": {
            "users": truth_users,
            "items": truth_items,
            "category_affinity": pd.DataFrame(theta, index=truth_users.index, columns=cats),
        },
        "stats": {"actions": {str(k): int(v) for k, v in counts.items()}},
    }
    return DataBundle(
        users=users,
        items=items,
        interactions=interactions,
        name=name or f"synthetic-{kind}s-{seed}",
        domain="items",
        meta=meta,
    )


def generate(
    domain: str = "people", size: str = "small", seed: int = 42, **overrides: Any
) -> DataBundle:
    """A preset-sized bundle: ``small`` (~5k interactions), ``medium`` (~50k), ``large`` (1M).

    ``domain`` is ``people`` or ``items`` (``events``/``startups`` pick the item kind);
    keyword overrides go to the generator.
    """
    key = {"events": "items", "startups": "items", "dating": "people"}.get(domain, domain)
    if key not in SIZE_PRESETS:
        raise InvalidInput(f"unknown domain {domain!r}; use one of people, items, events, startups")
    if size not in SIZE_PRESETS[key]:
        raise InvalidInput(f"unknown size {size!r}; use one of {', '.join(SIZE_PRESETS[key])}")
    params: dict[str, Any] = dict(SIZE_PRESETS[key][size]) | {"seed": seed}
    if domain == "startups":
        params["kind"] = "startup"
    params |= overrides
    if key == "people":
        return generate_people(**params)
    return generate_items(**params)
