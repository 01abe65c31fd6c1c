"""The item catalogue's per-request helpers give what the plain array formulas give: the
heuristic's tag score and same-city signal, computed without a sparse product's dispatch
or a string comparison per row."""

from __future__ import annotations

import numpy as np

from matchwise.ingest.profiles import upsert_items
from matchwise.runtime import Runtime
from matchwise.schemas import ItemIn
from matchwise.serve.state import Catalogue

CITIES = ["Berlin", "berlin", "BERLIN", None, "Munich", "Köln", "", "Paris"]
TAGS = [["Jazz", "outdoors"], ["jazz"], [], ["python", "running", "jazz"], ["Running"]]


def _catalogue(runtime: Runtime) -> Catalogue:
    items = [ItemIn(id=f"i{n}", kind="event", title=f"Item {n}", city=CITIES[n % len(CITIES)],
                    tags=TAGS[n % len(TAGS)]) for n in range(40)]  # fmt: skip
    with runtime.session() as s:
        upsert_items(s, items)
    with runtime.read_session() as s:
        return Catalogue.load(s)


def test_tag_scores_are_the_tag_matrix_times_the_weights(runtime: Runtime) -> None:
    catalogue = _catalogue(runtime)
    for weights in ({"jazz": 2.0, "running": 1.0}, {"python": 3.0, "unknown": 5.0}, {}):
        vector = np.zeros(len(catalogue.tag_vocabulary))
        for tag, weight in weights.items():
            if tag in catalogue.tag_vocabulary:
                vector[catalogue.tag_vocabulary[tag]] = weight
        np.testing.assert_array_equal(catalogue.tag_scores(weights), catalogue.tag_matrix @ vector)
    assert catalogue.tag_scores({"jazz": 1.0}).sum() > 0


def test_in_city_is_a_case_insensitive_comparison(runtime: Runtime) -> None:
    catalogue = _catalogue(runtime)
    rows = np.arange(0, len(catalogue), 3)
    for city in ("Berlin", "bErLiN", "Munich", "Köln", "Nowhere", None, ""):
        expected = (catalogue.city_lc[rows] == (city or "").lower()) & bool(city)
        np.testing.assert_array_equal(catalogue.in_city(rows, city), expected)
    assert catalogue.in_city(rows, "berlin").any()
