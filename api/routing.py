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
