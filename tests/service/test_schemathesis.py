"""Property-based run of schemathesis against the app's own OpenAPI document (in process).

Positive and negative cases for every operation, every built-in check (no server errors, only
documented status codes and content types, responses matching their schemas, negative data
rejected, ...). At least 1,000 generated cases in total.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from tests.service.conftest import make_settings

pytestmark = pytest.mark.slow

MIN_TOTAL_CASES = 1000
# Cases per operation and mode for operations with a body; parameterless GETs need only a few.
BODY_EXAMPLES = 200
OTHER_EXAMPLES = 10


def _runner(operation: Any, mode: GenerationMode, executed: Counter[str]) -> Callable[[], None]:
    label = f"{operation.label} [{mode.value}]"
    # JSON Schema cannot say "shape[0] == len(data)", so a schema-valid v2 request may still be
    # rejected (422, documented); every other check still runs on that operation.
    excluded = [positive_data_acceptance] if operation.path.endswith("/infer") else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=BODY_EXAMPLES if operation.body else OTHER_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: Any) -> None:
        executed[label] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.call_and_validate(excluded_checks=excluded)

    return run


def test_schemathesis_finds_no_errors() -> None:
    # Limits small enough that no generated batch can exceed the body limit (413 is tested elsewhere).
    app = create_app(make_settings(max_text_chars=2000, max_batch_size=16))
    app.state.service.load_model()  # the ASGI test transport runs no lifespan
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {
        "POST /v1/classify",
        "POST /predict",
        "POST /v2/models/scam-classifier/infer",
        "GET /readyz",
        "GET /v2/models/scam-classifier",
    }
    executed: Counter[str] = Counter()
    failures: list[str] = []
    for operation in operations:
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.body else [])
        for mode in modes:
            try:
                _runner(operation, mode, executed)()
            except Exception as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    total = sum(executed.values())
    print(f"schemathesis: {total} cases", dict(executed))
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_TOTAL_CASES, executed
