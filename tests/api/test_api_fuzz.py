"""A bounded fuzz run over the OpenAPI spec (schemathesis), on both stores, against a
live server holding a little real data: no 5xx, every answer matches its declared
schema and content type, every status code the API answers is declared, and data that
breaks the schema is refused.

Cases come from schemathesis's Hypothesis strategies per operation (its pytest plugin
does not run under this pytest), in both of its modes: requests that follow the schema,
and requests that break it on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from matchwise.api import create_app
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.factories import items_fixture, people_fixture
from tests.utils.live_server import live_server, wait_until_ready

EXAMPLES = 20  # per operation, mode and store: bounded, so the default suite stays fast
#: Not "positive data acceptance": some rules span fields (latitude with longitude,
#: age_min <= age_max) or name ids that must exist, which a JSON schema cannot say, so
#: schema-valid requests may rightly get a 4xx.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def served_schema(runtime: Runtime) -> Iterator[tuple[Any, dict[str, str]]]:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "admin", name="fuzz")
    with live_server(create_app(runtime=runtime)) as url:
        wait_until_ready(url)  # as a load balancer does: /readyz is 503 while warming up
        yield (
            schemathesis.openapi.from_url(f"{url}/openapi.json"),
            {"Authorization": f"Bearer {key}"},
        )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_holds_against_generated_requests(
    served_schema: tuple[Any, dict[str, str]], mode: GenerationMode
) -> None:
    schema, auth = served_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    fuzzed = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def holds(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            holds()
        except Unsatisfiable:  # nothing to break: without inputs (/healthz, /readyz)
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    assert len(fuzzed) >= len(operations) - 2, fuzzed
