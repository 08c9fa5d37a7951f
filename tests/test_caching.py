"""ETags, revalidation, freshness headers, compression and CORS."""

import gzip
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.helpers import Writable, new_metric

PATHS = [
    "/v1/metrics",
    "/v1/metrics?category=market&sort=-value_high",
    "/v1/metrics/car-t-dose-manufacturing-cost",
    "/v1/metrics/facets?facet=unit",
    "/v1/faq",
    "/v1/sources/coreychem-future-of-cdmos-2026/text",
    "/v1/metrics.csv",
    "/v1/faq.ndjson",
    "/openapi.json",
]


@pytest.mark.parametrize("path", PATHS)
def test_successful_gets_carry_validators_and_revalidate_to_304(
    client: TestClient, path: str
) -> None:
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=60"
    assert {"Accept", "Accept-Encoding"} <= {v.strip() for v in first.headers["vary"].split(",")}
    again = client.get(path)
    assert again.headers["etag"] == etag and again.content == first.content

    revalidated = client.get(path, headers={"If-None-Match": etag})
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    assert revalidated.headers["cache-control"] == "public, max-age=60"
    stale = client.get(path, headers={"If-None-Match": '"not-the-tag"'})
    assert stale.status_code == 200 and stale.content == first.content


def _precondition_failed(response: httpx.Response, path: str) -> None:
    assert response.status_code == 412, path
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["title"], body["status"], body["instance"]) == (
        "Precondition Failed", 412, path.partition("?")[0],
    )  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", [{}, {"Origin": "https://dashboard.example"}])
def test_if_match_on_a_get_is_evaluated(
    client: TestClient, path: str, origin: dict[str, str]
) -> None:
    """RFC 9110 §13.1.1: a GET whose If-Match names none of the current tags is refused with
    412 (strong comparison: a weak tag never matches); `*` or the current tag is served.
    If-Match is evaluated before If-None-Match. (With `Origin`, the cache answers after CORS
    rather than at its edge: both ways.)"""
    first = client.get(path, headers=origin)
    tag = first.headers["etag"]
    for if_match in (tag, "*", f'"other", {tag}'):
        served = client.get(path, headers={**origin, "If-Match": if_match})
        assert served.status_code == 200 and served.content == first.content, if_match
    for if_match in ('"not-the-tag"', f"W/{tag}"):
        _precondition_failed(client.get(path, headers={**origin, "If-Match": if_match}), path)
    both = {**origin, "If-Match": tag, "If-None-Match": tag}
    assert client.get(path, headers=both).status_code == 304
    stale = {**origin, "If-Match": '"not-the-tag"', "If-None-Match": tag}
    _precondition_failed(client.get(path, headers=stale), path)
    assert client.head(path, headers={**origin, "If-Match": '"not-the-tag"'}).status_code == 412


def test_if_match_leaves_errors_alone_and_holds_probes_to_no_tag(client: TestClient) -> None:
    """Preconditions are evaluated only on what would be a 200 (RFC 9110 §13.2.1); a probe has
    no tag, so only `If-Match: *` matches it."""
    missing = client.get("/v1/metrics/nope", headers={"If-Match": '"any"'})
    assert missing.status_code == 404
    for probe in ("/healthz", "/readyz"):
        assert client.get(probe, headers={"If-Match": "*"}).status_code == 200
        _precondition_failed(client.get(probe, headers={"If-Match": '"any"'}), probe)


def test_tags_differ_between_representations(client: TestClient) -> None:
    tags = {
        client.get("/v1/faq").headers["etag"],
        client.get("/v1/faq?limit=1").headers["etag"],
        client.get("/v1/faq.csv").headers["etag"],
        client.get("/v1/faq.ndjson").headers["etag"],
        client.get("/v1/faq/scaling-bottlenecks").headers["etag"],
    }
    assert len(tags) == 5


def test_large_responses_are_gzipped_deterministically_when_accepted(client: TestClient) -> None:
    plain = client.get("/v1/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = [client.get("/v1/metrics", headers={"Accept-Encoding": "gzip"}) for _ in range(2)]
    for response in zipped:
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == plain.content  # httpx decodes it
    assert zipped[0].headers["etag"] == zipped[1].headers["etag"] != plain.headers["etag"]
    assert zipped[0].headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    revalidated = client.get(
        "/v1/metrics",
        headers={"Accept-Encoding": "gzip", "If-None-Match": zipped[0].headers["etag"]},
    )
    assert revalidated.status_code == 304


def test_gzip_raw_bytes_and_small_bodies(client: TestClient) -> None:
    with client.stream("GET", "/v1/metrics", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert gzip.decompress(raw) == client.get("/v1/metrics").content
    # A whole body in one message (a page is tagged by its route) is sent with its length.
    assert response.headers["content-length"] == str(len(raw))
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 KiB
    refused = client.get("/v1/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    export = client.get("/v1/metrics.csv", headers={"Accept-Encoding": "gzip"})
    assert export.headers["content-encoding"] == "gzip"
    assert export.text.startswith("id,category,name")


def test_errors_and_probes_are_not_cached(client: TestClient) -> None:
    missing = client.get("/v1/metrics/nope")
    assert "etag" not in missing.headers and "cache-control" not in missing.headers
    assert client.get("/readyz").headers["cache-control"] == "no-store"


def _preflight(
    client: TestClient, origin: str, method: str, headers: str | None = None
) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return client.options("/v1/faq", headers=asked)


@pytest.fixture
def restricted(seeded_engine: object) -> Iterator[TestClient]:
    """The API with browsers of one origin allowed (`CORS_ORIGINS`)."""
    from api.config import Settings
    from api.main import create_app

    settings = Settings(cors_origins=["https://allowed.example"])
    with TestClient(create_app(settings, engine=seeded_engine)) as client:  # type: ignore[arg-type]
        yield client


def test_cors_allows_any_origin_to_read(client: TestClient) -> None:
    response = client.get("/v1/faq", headers={"Origin": "https://dashboard.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]
    preflight = _preflight(client, "https://dashboard.example", "GET", "If-None-Match")
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]


def test_cors_origins_are_configurable(restricted: TestClient) -> None:
    allowed = restricted.get("/v1/faq", headers={"Origin": "https://allowed.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://allowed.example"
    other = restricted.get("/v1/faq", headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in other.headers


def test_a_refused_cors_preflight_is_a_problem_naming_what_was_refused(
    restricted: TestClient,
) -> None:
    refused = _preflight(restricted, "https://other.example", "PUT")
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The cross-origin (CORS) preflight is refused: the origin "
        "'https://other.example' and the method 'PUT'. Methods allowed: DELETE, GET, HEAD, "
        "OPTIONS, PATCH, POST; request headers allowed: accept, accept-language, "
        "authorization, content-language, content-type, idempotency-key, if-match, "
        "if-none-match, x-request-id.",
        "instance": "/v1/faq",
    }
    headers = _preflight(restricted, "https://allowed.example", "GET", "X-Secret")
    assert headers.status_code == 400
    assert "the headers 'X-Secret'" in headers.json()["detail"]
    # The allowed origin still gets the preflight's grant on the refusal, as Starlette's.
    assert headers.headers["access-control-allow-origin"] == "https://allowed.example"
    assert _preflight(restricted, "https://allowed.example", "GET").status_code == 200


# What a browser page on another origin sends to write: its key, a precondition, a retry's key.
WRITE_PREFLIGHTS = [
    ("POST", "Authorization, Content-Type, Idempotency-Key, X-Request-ID"),
    ("PATCH", "authorization,content-type,if-match,if-none-match"),
    ("DELETE", "Authorization, If-Match"),
    ("GET", "If-None-Match, If-Match, X-Request-ID"),
]
# What its script must read: tags, where a record went, paging, waits, the request id, ...
EXPOSED = {
    "allow", "content-disposition", "dataset-version", "etag", "idempotent-replayed", "link",
    "location", "retry-after", "www-authenticate", "x-request-id",
}  # fmt: skip


def _exposed(response: httpx.Response) -> set[str]:
    listed = response.headers["access-control-expose-headers"].split(",")
    return {name.strip().lower() for name in listed}


@pytest.mark.parametrize(("method", "headers"), WRITE_PREFLIGHTS)
def test_a_preflight_grants_the_headers_the_contract_has_clients_send(
    client: TestClient, restricted: TestClient, method: str, headers: str
) -> None:
    for app, origin, allowed in (
        (client, "https://dashboard.example", "*"),
        (restricted, "https://allowed.example", "https://allowed.example"),
    ):
        preflight = _preflight(app, origin, method, headers)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert method in preflight.headers["access-control-allow-methods"].split(", ")
        granted = preflight.headers["access-control-allow-headers"].lower().split(", ")
        assert {name.strip().lower() for name in headers.split(",")} <= set(granted)


def test_a_page_on_another_origin_can_write_and_read_what_it_needs(writable: Writable) -> None:
    """A cross-origin create, update and delete, as a browser sends them after its preflight:
    each answer grants the origin and exposes the headers the next step needs (Location, ETag),
    and so do the refusals (401's WWW-Authenticate, 412, 413, 428)."""
    w = writable
    origin = {"Origin": "https://dashboard.example"}
    anonymous = w.client.post("/v1/metrics", json=new_metric(), headers=origin)
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == "*"
    assert _exposed(anonymous) == EXPOSED
    keyed = {**origin, **w.auth(), "Idempotency-Key": "k-1", "X-Request-ID": "dashboard-1"}
    created = w.client.post("/v1/metrics", json=new_metric(), headers=keyed)
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == "*"
    assert _exposed(created) == EXPOSED
    assert created.headers["x-request-id"] == "dashboard-1"
    replayed = w.client.post("/v1/metrics", json=new_metric(), headers=keyed)
    assert replayed.headers["idempotent-replayed"] == "true"
    location, tag = created.headers["location"], created.headers["etag"]
    read = w.client.get(location, headers=origin)
    assert read.headers["etag"] == tag and _exposed(read) == EXPOSED
    unconditional = w.client.patch(location, json={"name": "x"}, headers={**origin, **w.auth()})
    assert unconditional.status_code == 428
    assert unconditional.headers["access-control-allow-origin"] == "*"
    patched = w.client.patch(
        location, json={"name": "Patched"}, headers={**origin, **w.auth(), "If-Match": tag}
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["access-control-allow-origin"] == "*"
    stale = w.client.delete(location, headers={**origin, **w.auth(), "If-Match": tag})
    assert stale.status_code == 412
    assert stale.headers["access-control-allow-origin"] == "*"
    removed = w.client.delete(
        location, headers={**origin, **w.auth(), "If-Match": patched.headers["etag"]}
    )
    assert removed.status_code == 204
    assert removed.headers["access-control-allow-origin"] == "*"
    too_large = w.client.post(
        "/v1/metrics",
        content=b" " * (2**20 + 1),
        headers={**origin, **w.auth(), "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    assert too_large.headers["access-control-allow-origin"] == "*"
