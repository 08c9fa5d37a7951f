"""Contract fuzzing with Schemathesis: every operation, valid and invalid inputs, all checks.

Beyond Schemathesis's own checks (server errors, response schemas, status codes, content types,
headers, acceptance of valid data, rejection of invalid data, ...), every error response must be
RFC 9457 problem details whose `status` is the HTTP status.
"""

import json
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from api.db import make_engine
from api.main import create_app
from api.records.asof import TIMESTAMP

# Per operation and mode, on each database: bounded so that `make test` stays well under 20
# minutes with about 110 operations (the live-server stage in tests/test_fuzz.py fuzzes them
# again); CONTRACT_EXAMPLES raises it for a deeper run.
EXAMPLES_PER_OPERATION = int(os.environ.get("CONTRACT_EXAMPLES", "25"))


@schemathesis.check
def errors_are_problem_details(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every response with status >= 400 is application/problem+json naming that status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0] == "application/problem+json", content_type
    body = json.loads(response.content)
    assert body["status"] == response.status_code, body
    assert body["title"] and body["detail"] and body["type"], body
    return True


# The schema is read at import time; each test binds the app to that run's seeded database.
app = create_app(engine=make_engine("sqlite://"))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_OPERATION,
)
# An invalid body over 1 MiB is refused with 413 (documented on every write) before it is read,
# and a query string over 8 KiB or 64 parameters with 414 before any parameter is looked at:
# that is a rejection too.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413", "414"]


def _outside_utc(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        TIMESTAMP.validate_python(value)
    except ValidationError as error:
        return "outside the range of timestamps" in str(error)
    return False


@pytest.fixture
def bound_app(seeded_engine: Engine) -> Iterator[None]:
    app.state.engine = app.state.read_engine = seeded_engine
    yield


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_honours_the_contract(case: schemathesis.Case, bound_app: None) -> None:
    # `after` is an opaque keyset cursor, valid only as the API gives it in `next`: any other
    # string of its pattern is rightly a 422, so with one the "valid data is accepted" check
    # does not apply (tests/test_metrics.py walks real cursors and checks bad ones).
    # A moment that its format allows but that leaves years 1 to 9999 once converted to UTC
    # is a 422, as `as_of` and `since` document (and tests/test_history.py checks).
    query = case.query or {}
    refused = "after" in query or any(_outside_utc(query.get(name)) for name in ("as_of", "since"))
    excluded = [positive_data_acceptance] if refused else []
    case.call_and_validate(additional_checks=[errors_are_problem_details], excluded_checks=excluded)
