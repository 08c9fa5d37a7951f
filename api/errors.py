"""Domain errors and the RFC 9457 problem document they become (the HTTP side, that turns
them into responses, is api.problems: services and commands need no web framework)."""

from http import HTTPStatus
from typing import Any
from urllib.parse import quote_from_bytes

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import with_example

PROBLEM_MEDIA_TYPE = "application/problem+json"
# A problem lists this many input errors and counts the rest: a body of 300,000 bad entries
# is answered in a few kilobytes.
MAX_PROBLEM_ERRORS = 50
# A write's body that is not UTF-8 text (RFC 8259 8.1), as its 422 says it.
NOT_UTF8 = "not valid JSON: the body is not UTF-8 text"


def instance_of(scope: Any) -> str:
    """A problem's `instance`: the request's path as it was sent, a URI reference (RFC 9457),
    percent-encoding kept (`/v1/metrics/a%20b`, not the decoded `a b`, nor U+FFFD for %FF)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return quote_from_bytes(raw, safe="/%:@!$&'()*+,;=-._~")


class ProblemError(BaseModel):
    """One bad input: where it is, which parameter or field, and what is wrong with it."""

    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in", description="query, path, header or body", examples=["query"])
    name: str = Field(description="Parameter name or dotted field path.", examples=["limit"])
    detail: str = Field(examples=["Input should be less than or equal to 500"])


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = with_example("Problem")

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="Short summary of the problem type.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ProblemError] | None = Field(
        default=None,
        description=f"For input errors: each bad parameter or field (the first "
        f"{MAX_PROBLEM_ERRORS}).",
    )
    more_errors: int | None = Field(
        default=None, description="How many further input errors `errors` leaves out."
    )


class DomainError(Exception):
    """An error a client can cause; `status` is the only HTTP knowledge a service needs."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, detail: str, errors: list[ProblemError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.omitted = 0  # further errors, counted but not listed


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND


class NotAcceptable(DomainError):
    status = HTTPStatus.NOT_ACCEPTABLE


class UnsupportedMediaType(DomainError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class InvalidInput(DomainError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, location: str, name: str, detail: str) -> None:
        error = ProblemError(in_=location, name=name, detail=detail)
        super().__init__(invalid([error]), [error])

    @classmethod
    def many(cls, errors: list[ProblemError], omitted: int = 0) -> "InvalidInput":
        """One 422 naming several bad fields (and counting `omitted` more)."""
        first = errors[0]
        exc = cls(first.in_, first.name, first.detail)
        exc.detail, exc.errors = invalid(errors, omitted), errors
        exc.omitted = omitted
        return exc


class Conflict(DomainError):
    status = HTTPStatus.CONFLICT


class PreconditionFailed(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED


class PreconditionRequired(DomainError):
    status = HTTPStatus.PRECONDITION_REQUIRED


class Unauthorized(DomainError):
    status = HTTPStatus.UNAUTHORIZED


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN


class TooManyRequests(DomainError):
    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


def invalid(errors: list[ProblemError], omitted: int = 0) -> str:
    """A 422's detail: the one error, place and reason; or the distinct places of `errors`, in
    order (the first MAX_PROBLEM_ERRORS, then how many more), each described in `errors`."""
    if len(errors) == 1 and not omitted:
        (error,) = errors
        reason = error.detail if error.detail.endswith(".") else f"{error.detail}."
        return f"Invalid input: {error.in_} {error.name!r}: {reason}"
    names = list(dict.fromkeys(f"{e.in_} {e.name!r}" for e in errors[:MAX_PROBLEM_ERRORS]))
    rest = max(0, len(errors) - MAX_PROBLEM_ERRORS) + omitted
    return "Invalid input: " + ", ".join(names) + (f" and {rest} more." if rest > 0 else ".")


def describe(error: Any) -> ProblemError:
    """One pydantic error as a problem entry; its location starts with query, path, header or
    body."""
    location, *path = error.get("loc") or ("body",)
    # A location alone (the body as a whole) is named by it; a member or parameter whose name
    # is empty (`?=x`, `{"": 1}`) is named "" as sent, not after its location.
    name = ".".join(str(part) for part in path) if path else str(location)
    if error.get("type") == "json_invalid":  # located at a character, not at a field
        reason = (error.get("ctx") or {}).get("error", "")
        where = f" at character {path[0]}" if path else ""
        return ProblemError(in_="body", name="body", detail=f"not valid JSON{where}: {reason}")
    return ProblemError(in_=str(location), name=name, detail=detail_of(error, str(location)))


def detail_of(error: Any, location: str = "body") -> str:
    """What is wrong, as one pydantic error says it, for a field of a record (`body`: a POST,
    a PATCH or a dataset file's entry, which the loader words alike) or a parameter."""
    if error.get("type") == "extra_forbidden":
        return "Unknown or server-owned field." if location == "body" else "Unknown parameter."
    return str(error.get("msg", "Invalid.")).removeprefix("Value error, ")


def title_of(status: int) -> str:
    """A problem's `title`: the status's reason phrase, as every layer writes it (413 by its
    RFC 9110 name, which the body limit answers before the framework runs; Python 3.11 still
    calls it "Request Entity Too Large")."""
    return "Content Too Large" if status == 413 else HTTPStatus(status).phrase


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring problem+json bodies for `statuses` (429 and 503
    say when to try again)."""
    retry = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return {
        status: {
            "description": title_of(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": retry} if status in (429, 503) else {}),
        }
        for status in statuses
    }
