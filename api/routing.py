"""Pieces every router shares: item-route query checks and documented error responses."""

from typing import Any

from fastapi import Request

from api.errors import InvalidInput, problem_responses

# Every /v1 operation can answer these.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = problem_responses(406, 422, 503)
ITEM_ERRORS: dict[int | str, dict[str, Any]] = problem_responses(404, 406, 422, 503)


def no_query_parameters(request: Request) -> None:
    """Item routes take no query parameters; refuse any rather than ignore it."""
    for name in request.query_params:
        raise InvalidInput("query", name, "Unknown parameter.")


def single_valued_parameters(request: Request) -> None:
    """Every parameter takes one value; `?limit=1&limit=2` is ambiguous, so it is refused."""
    names = [name for name, _value in request.query_params.multi_items()]
    for name in sorted({name for name in names if names.count(name) > 1}):
        raise InvalidInput("query", name, "Given more than once; pass a single value.")
