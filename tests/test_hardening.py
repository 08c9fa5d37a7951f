"""Hardened edges (docs/security.md): what an anonymous or careless client sends is bounded,
refused with a problem, or neutralised, and never stored or echoed unsafely."""

import concurrent.futures
import csv
import io
import json
import logging
import select
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text, update
from sqlmodel import Session

from api import migrate
from api.auth import service as auth_service
from api.auth.models import IdempotentResponse
from api.config import Settings
from api.db import writer
from api.errors import Conflict
from api.exports import _cell
from api.guards import route_table
from api.main import create_app
from api.observability import JsonFormatter, log_config
from api.records.registry import KINDS
from tests.conftest import DatabaseFactory, seed, serving
from tests.helpers import SOURCE, Writable, make_keys, new_metric

# --- shared: one seeded database with keys per backend, for requests that change nothing ----


@pytest.fixture(scope="module")
def shared(databases: DatabaseFactory) -> Iterator[Writable]:
    engine = databases.new_engine()
    migrate.upgrade(engine)
    seed(engine)
    keys = make_keys(engine)
    with TestClient(create_app(engine=engine), raise_server_exceptions=False) as client:
        yield Writable(client, engine, keys)
    engine.dispose()


def problem(response: httpx.Response, status: int) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


# --- query-string floods ----------------------------------------------------------------------


def test_a_query_string_over_8_kib_is_414(shared: Writable) -> None:
    body = problem(shared.client.get("/v1/metrics?q=" + "a" * 8200), 414)
    assert body["detail"] == "Query strings are limited to 8192 bytes."


def test_more_than_64_parameters_is_414(shared: Writable) -> None:
    query = "&".join(f"p{n}=1" for n in range(65))
    body = problem(shared.client.get(f"/v1/metrics?{query}"), 414)
    assert body["detail"] == "A request takes at most 64 query parameters."
    assert problem(shared.client.get("/healthz?" + "&" * 5000), 414)["status"] == 414


def test_a_problem_lists_50_errors_and_counts_the_rest(shared: Writable) -> None:
    query = "&".join(f"p{n}=1" for n in range(60))
    body = problem(shared.client.get(f"/v1/metrics?{query}"), 422)
    assert len(body["errors"]) == 50 and body["more_errors"] == 10
    assert body["detail"].endswith(" and 10 more.")


# --- 422 amplification on writes ----------------------------------------------------------


def test_a_body_of_300000_empty_subjects_gets_a_small_422(shared: Writable) -> None:
    body = new_metric(subjects=[""] * 300_000)
    response = shared.client.post("/v1/metrics", json=body, headers=shared.auth())
    refused = problem(response, 422)
    assert len(response.content) < 2000
    assert refused["errors"] == [
        {
            "in": "body",
            "name": "subjects",
            "detail": "List should have at most 50 items after validation, not 300000",
        }
    ]


def test_60000_unknown_fields_are_one_error(shared: Writable) -> None:
    path = "/v1/metrics/viral-vector-lead-time"
    fields = {f"x{n}": 1 for n in range(60_000)}
    headers = {**shared.auth(), "If-Match": shared.etag(path)}
    detail = "60000 unknown or server-owned fields ('x0', 'x1', 'x2', 'x3', 'x4', ...)"
    for response in (
        shared.client.patch(path, json=fields, headers=headers),
        shared.client.post("/v1/metrics", json={**new_metric(), **fields}, headers=shared.auth()),
    ):
        assert problem(response, 422)["errors"] == [
            {"in": "body", "name": "body", "detail": detail}
        ]


def test_a_body_with_more_than_50_errors_lists_50(shared: Writable) -> None:
    body = new_metric(subjects=["\x07"] * 50, name="", description="", year="2025")
    response = shared.client.post("/v1/metrics", json=body, headers=shared.auth())
    refused = problem(response, 422)
    assert len(refused["errors"]) == 50 and refused["more_errors"] == 3
    assert refused["detail"].endswith(" and 3 more.")


# --- strict JSON types, control characters, list caps, URLs --------------------------------


@pytest.mark.parametrize(
    ("changes", "name", "detail"),
    [
        ({"value": "30"}, "value", "Input should be a valid number"),
        ({"value": True}, "value", "Input should be a valid number"),
        ({"year": "2025"}, "year", "Input should be a valid integer"),
        ({"year": 2025.0}, "year", "Input should be a valid integer"),
        ({"forecast": "yes"}, "forecast", "Input should be a valid boolean"),
        ({"forecast": 1}, "forecast", "Input should be a valid boolean"),
        (
            {"name": "Red \x1b[31malert"},
            "name",
            "must not contain control characters (U+001B at 4); newline and tab are allowed",
        ),
        (
            {"description": "carriage\rreturn"},
            "description",
            "must not contain control characters (U+000D at 8); newline and tab are allowed",
        ),
        (
            {"subjects": [f"s{n}" for n in range(51)]},
            "subjects",
            "List should have at most 50 items after validation, not 51",
        ),
    ],
)
def test_bodies_are_strict_json_without_control_characters(
    shared: Writable, changes: dict[str, object], name: str, detail: str
) -> None:
    response = shared.client.post("/v1/metrics", json=new_metric(**changes), headers=shared.auth())
    assert problem(response, 422)["errors"] == [{"in": "body", "name": name, "detail": detail}]
    path = "/v1/metrics/viral-vector-lead-time"
    headers = {**shared.auth(), "If-Match": shared.etag(path)}
    patched = shared.client.patch(path, json=changes, headers=headers)
    assert problem(patched, 422)["errors"] == [{"in": "body", "name": name, "detail": detail}]
    assert shared.client.get(f"/v1/metrics/{new_metric()['id']}").status_code == 404


def test_newline_and_tab_are_text(writable: Writable) -> None:
    body = new_metric(description="Two lines:\n\tthe second indented.")
    created = writable.client.post("/v1/metrics", json=body, headers=writable.auth())
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "Two lines:\n\tthe second indented."


@pytest.mark.parametrize(
    ("field", "values"),
    [("examples", [f"Platform {n}" for n in range(51)]), ("metric_ids", ["a"] * 51)],
)
def test_entity_lists_hold_at_most_50(shared: Writable, field: str, values: list[str]) -> None:
    path = "/v1/technologies/closed-system-automation"
    headers = {**shared.auth(), "If-Match": shared.etag(path)}
    response = shared.client.patch(path, json={field: values}, headers=headers)
    detail = "List should have at most 50 items after validation, not 51"
    assert problem(response, 422)["errors"] == [{"in": "body", "name": field, "detail": detail}]


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://example.com/a", "data:text/html,x", "http://", "http://a b"],
)
def test_a_source_url_is_http_or_https(shared: Writable, url: str) -> None:
    path = f"/v1/sources/{SOURCE}"
    headers = {**shared.auth("root"), "If-Match": shared.etag(path)}
    response = shared.client.patch(path, json={"url": url}, headers=headers)
    detail = "must be an http:// or https:// address, without spaces"
    assert problem(response, 422)["errors"] == [{"in": "body", "name": "url", "detail": detail}]


def test_a_source_date_is_a_string(shared: Writable) -> None:
    path = f"/v1/sources/{SOURCE}"
    headers = {**shared.auth("root"), "If-Match": shared.etag(path)}
    response = shared.client.patch(path, json={"published_on": 1_700_000_000}, headers=headers)
    assert problem(response, 422)["errors"][0]["name"] == "published_on"


# --- reserved ids and actor names --------------------------------------------------------


def test_a_route_word_is_not_an_id(shared: Writable) -> None:
    created = shared.client.post("/v1/metrics", json=new_metric(id="facets"), headers=shared.auth())
    assert problem(created, 422)["errors"] == [
        {
            "in": "body",
            "name": "id",
            "detail": "'facets' is reserved: /v1/metrics/facets is another route",
        }
    ]


def test_every_route_word_beside_an_item_route_is_reserved_by_its_kind(shared: Writable) -> None:
    templates = [route.template for route in route_table(shared.client.app).routes]
    for kind in KINDS.values():
        collection = f"/v1{kind.path}/"
        words = {
            t.removeprefix(collection)
            for t in templates
            if t.startswith(collection) and "/" not in t.removeprefix(collection) and "{" not in t
        }
        assert words <= set(kind.reserved_ids), (kind.name, words)


@pytest.mark.parametrize("name", ["seed", "import", "Seed"])
def test_the_loaders_actor_names_cannot_be_key_names(shared: Writable, name: str) -> None:
    with (
        Session(writer(shared.engine)) as session,
        session.begin(),
        pytest.raises(Conflict, match="reserved"),
    ):
        auth_service.create_key(session, name=name, scope="write")


# --- idempotency records expire -----------------------------------------------------------


def test_idempotency_records_are_kept_24_hours_then_deleted(writable: Writable) -> None:
    headers = {**writable.auth(), "Idempotency-Key": "k-1"}
    first = writable.client.post("/v1/metrics", json=new_metric(), headers=headers)
    assert first.status_code == 201
    again = writable.client.post("/v1/metrics", json=new_metric(), headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    with Session(writer(writable.engine)) as session, session.begin():
        session.execute(
            update(IdempotentResponse).values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    other = new_metric(id="quality-failure-cost-multiple-third")
    later = writable.client.post("/v1/metrics", json=other, headers=headers)
    assert later.status_code == 201 and "idempotent-replayed" not in later.headers
    with Session(writable.engine) as session:
        kept = session.execute(text("SELECT count(*) FROM idempotent_response")).scalar_one()
    assert kept == 1  # the expired record went; the new one stays


# --- authentication ------------------------------------------------------------------------


def test_failed_authentication_is_throttled_per_address(fresh_seeded_engine: Engine) -> None:
    keys = make_keys(fresh_seeded_engine)
    settings = Settings(database_url="sqlite://", auth_failure_limit=3)
    app = create_app(settings=settings, engine=fresh_seeded_engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        bad = {"Authorization": "Bearer not-a-key"}
        for _ in range(3):
            assert client.post("/v1/metrics", json=new_metric(), headers=bad).status_code == 401
        refused = client.post("/v1/metrics", json=new_metric(), headers=bad)
        assert problem(refused, 429)["detail"].startswith("Too many failed authentications")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        good = {"Authorization": f"Bearer {keys['alice']}"}
        assert client.post("/v1/metrics", json=new_metric(), headers=good).status_code == 429
        other = TestClient(app, client=("10.0.0.9", 5000), raise_server_exceptions=False)
        assert other.post("/v1/metrics", json=new_metric(), headers=good).status_code == 201


def test_a_wrong_key_does_not_wait_for_the_write_lock(writable: Writable) -> None:
    engine = writable.engine
    with writer(engine).connect() as holder:  # a writer holds the write lock
        holder.exec_driver_sql(
            "SELECT version FROM dataset_state WHERE id = 1"
            + (" FOR UPDATE" if engine.dialect.name == "postgresql" else "")
        )
        bad = {"Authorization": "Bearer not-a-key"}
        response = writable.client.post("/v1/metrics", json=new_metric(), headers=bad)
        holder.rollback()
    assert problem(response, 401)["detail"] == "The API key is not valid."


# --- unbounded growth: cache keys and metrics labels ---------------------------------------


def test_cache_keys_stay_small_whatever_accept_says(shared: Writable) -> None:
    cache = shared.client.app.state.response_cache  # type: ignore[attr-defined]
    for n in range(3):
        accept = f"application/json, text/x-{n}" + ", x/y;q=0.1" * 10_000
        assert shared.client.get("/v1/metrics", headers={"Accept": accept}).status_code == 200
    keys = list(cache.store.entries)
    assert keys and all(len(repr(key)) < 100 for key in keys)
    same = shared.client.get("/v1/metrics", headers={"Accept": "Application/JSON"})
    again = shared.client.get("/v1/metrics", headers={"Accept": "application/json"})
    assert same.content == again.content


def test_unknown_methods_are_one_metrics_label(shared: Writable) -> None:
    for n in range(30):
        shared.client.request(f"X-RANDOM-{n}", "/v1/metrics")
    shared.client.request("BREW", f"/nowhere/{n}")
    exposition = shared.client.get("/metrics").text
    assert "X-RANDOM" not in exposition and "BREW" not in exposition
    assert 'method="other",route="/v1/metrics",status="405"' in exposition
    assert "/nowhere" not in exposition


# --- CSV formula injection ------------------------------------------------------------------


def test_csv_cells_that_would_run_as_formulas_are_prefixed(writable: Writable) -> None:
    name = '=HYPERLINK("http://evil.example","x")'
    body = new_metric(name=name, subjects=["@SUM(A1)", "+cmd", "plain"], geography="-1+2")
    assert (
        writable.client.post("/v1/metrics", json=body, headers=writable.auth()).status_code == 201
    )
    exported = writable.client.get("/v1/metrics.csv")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    row = rows[str(body["id"])]
    assert row["name"] == "'" + name
    assert row["subjects"] == "'@SUM(A1);+cmd;plain"
    assert row["geography"] == "'-1+2"
    assert row["value"] == "3.5"


@pytest.mark.parametrize(
    ("value", "cell"),
    [(-12.5, "-12.5"), (-3, "-3"), ("-3", "'-3"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b")],
)
def test_numbers_stay_numbers_and_text_is_neutralised(value: object, cell: str) -> None:
    assert _cell(value) == cell


# --- logs ---------------------------------------------------------------------------------


def test_every_log_line_is_json_with_control_characters_escaped() -> None:
    formatter = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("api.errors").makeRecord(
            "api.errors", logging.ERROR, __file__, 1, "unhandled error on %s %s",
            ("GET", "/v1/\x1b[2J\x1b[31mred"), sys.exc_info(),
        )  # fmt: skip
    line = formatter.format(record)
    assert "\x1b" not in line and "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "unhandled error on GET /v1/\x1b[2J\x1b[31mred"
    assert entry["level"] == "error" and "RuntimeError: boom" in entry["exception"]
    config = log_config("info")
    assert config["formatters"]["json"]["()"] is JsonFormatter
    assert {"uvicorn", "uvicorn.error"} <= set(config["loggers"])
    api_handlers = logging.getLogger("api").handlers
    assert api_handlers and all(isinstance(h.formatter, JsonFormatter) for h in api_handlers)


# --- HTTP exactness -----------------------------------------------------------------------


def test_a_trailing_slash_redirects_relative_whatever_the_host(shared: Writable) -> None:
    response = shared.client.get(
        "/v1/metrics/?limit=2", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/v1/metrics?limit=2"
    sneaky = shared.client.get("//evil.example/", follow_redirects=False)
    # (the client reads `//evil.example/` as that host's `/`, the explorer's start page here)
    assert sneaky.status_code in (200, 404) and "location" not in sneaky.headers
    split = shared.client.get("/v1/metrics/a%0D%0ASet-Cookie:%20x=1/", follow_redirects=False)
    assert split.headers["location"] == "/v1/metrics/a%0D%0ASet-Cookie%3A%20x%3D1"
    assert "set-cookie" not in split.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/metrics", "GET, HEAD"),
        ("DELETE", "/openapi.json", "GET, HEAD"),
        ("PUT", "/docs", "GET, HEAD"),
        ("POST", "/redoc", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/v1/metrics/facets", "GET, HEAD"),
        ("PATCH", "/v1/metrics/facets", "GET, HEAD"),
        ("OPTIONS", "/v1/metrics", "GET, HEAD, POST"),
        ("POST", "/docs-assets/swagger-ui.css", "GET, HEAD"),
    ],
)
def test_every_405_names_the_allowed_methods(
    shared: Writable, method: str, path: str, allow: str
) -> None:
    response = shared.client.request(method, path, headers=shared.auth())
    assert problem(response, 405)["detail"] == f"{method} is not allowed on {path}."
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("kind", list(KINDS.values()), ids=lambda kind: kind.name)
def test_a_nul_in_a_path_id_is_404(shared: Writable, method: str, kind: object) -> None:
    path = f"/v1{kind.path}/a%00b"  # type: ignore[attr-defined]
    response = shared.client.request(method, path, headers={**shared.auth("root"), "If-Match": "*"})
    assert problem(response, 404)["detail"] == f"No resource at /v1{kind.path}/a\x00b."  # type: ignore[attr-defined]
    revisions = shared.client.get(f"{path}/revisions")
    assert problem(revisions, 404)["status"] == 404


# --- requests the server cannot parse, on a real server ------------------------------------

UNPARSABLE_REQUESTS = {
    "unknown method": b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw bytes in the target": b"GET /v1/metrics/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header without a colon": b"GET /v1/metrics HTTP/1.1\r\nHost x\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


def _raw_exchange(url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as bytes on a new connection; the status line, headers and body the
    server answers before it closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return status, headers, body


@pytest.mark.parametrize("request_bytes", UNPARSABLE_REQUESTS.values(), ids=UNPARSABLE_REQUESTS)
def test_a_request_the_server_cannot_parse_is_a_problem(
    server_url: str, request_bytes: bytes
) -> None:
    """uvicorn refuses what its parser cannot read before the app sees it; `serve` runs it with
    a protocol that says so as problem details (api.http_protocol), then closes the connection."""
    status, headers, body = _raw_exchange(server_url, request_bytes)
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request is not valid HTTP/1.1: its request line (method, target, "
        "version) or a header could not be parsed.",
    }
    # The server serves the next connection as ever.
    status, headers, _body = _raw_exchange(
        server_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("target", ["/v1/metrics?q=" + "a" * 70_000, "/v1/" + "a" * 65_600])
def test_a_target_too_long_for_the_parser_is_414_not_400(server_url: str, target: str) -> None:
    """A target over 65,535 bytes, which httptools cannot read, is refused as too long (as a
    shorter query over MAX_QUERY_BYTES is, by the app), not as malformed HTTP."""
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, headers, body = _raw_exchange(server_url, request)
    assert status == "HTTP/1.1 414 Request-URI Too Long"
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Request-URI Too Long",
        "status": 414,
        "detail": "The request target (path and query) is longer than the 65,535 bytes this "
        "server reads.",
    }
    # Just under it, the app's own limit on a query answers (the path is the app's to find).
    shorter = f"GET /v1/metrics?q={'a' * 65_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, _headers, body = _raw_exchange(server_url, shorter)
    assert status == "HTTP/1.1 414 Request-URI Too Long"
    assert json.loads(body)["detail"].startswith("Query strings are limited to ")


def _answer_of(connection: socket.socket) -> tuple[str, bytes]:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")[0], body


def test_a_request_head_that_is_slow_or_endless_is_answered_and_closed(
    seeded_engine: Engine,
) -> None:
    """A client that sends nothing, or its headers a byte at a time, or headers without end,
    holds a connection and memory that others need: a 408 after REQUEST_HEAD_TIMEOUT, a 431
    past 128 KiB, and the connection closed. A body, however large, is not part of the head."""
    with serving(seeded_engine, REQUEST_HEAD_TIMEOUT="1") as (_server, url):
        host, port = url.removeprefix("http://").split(":")
        address = (host, int(port))
        with socket.create_connection(address, timeout=10) as silent:
            started = time.monotonic()
            status, body = _answer_of(silent)
        assert status == "HTTP/1.1 408 Request Timeout"
        assert json.loads(body)["detail"] == (
            "The request's line and headers did not arrive within 1 s."
        )
        assert 0.9 < time.monotonic() - started < 5
        with socket.create_connection(address, timeout=10) as trickling:
            trickling.sendall(b"GET /v1/faq HTTP/1.1\r\nHost: x\r\n\r\n")  # answered
            first = b""
            while b"\r\n\r\n" not in first or len(first.partition(b"\r\n\r\n")[2]) < int(
                first.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or -1
            ):
                first += trickling.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 OK")
            trickled = 0
            # A byte each 0.1 s, which does not put the timeout off, until the server answers.
            while not select.select([trickling], [], [], 0.1)[0] and trickled < 100:
                trickling.sendall(
                    b"GET /v1/faq HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa"[
                        trickled : trickled + 1
                    ]
                    or b"a"
                )
                trickled += 1
            status, _body = _answer_of(trickling)
        assert trickled < 40
        assert status == "HTTP/1.1 408 Request Timeout"
        with socket.create_connection(address, timeout=10) as endless:
            endless.sendall(b"GET /v1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 140_000)
            status, body = _answer_of(endless)
        assert status == "HTTP/1.1 431 Request Header Fields Too Large"
        assert "longer than the 131,071 bytes" in json.loads(body)["detail"]
        large = httpx.post(f"{url}/v1/metrics", content=b"x" * 900_000, timeout=10)
        assert large.status_code == 401  # no key: the head was read whole, and answered


def _trickle_body(address: tuple[str, int], headers: str) -> tuple[int, bytes]:
    """POST a body of 1,000 bytes a byte each 0.1 s until the server closes the connection:
    (bytes sent, all it answered)."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(
            f"POST /v1/metrics HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json"
            "\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        answer, sent = b"", 0
        while sent < 100:
            if select.select([connection], [], [], 0.1)[0]:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
            else:
                connection.sendall(b" ")
                sent += 1
        return sent, answer


def test_a_request_body_that_is_slow_is_answered_and_closed(
    fresh_seeded_engine: Engine,
) -> None:
    """A client that sends its headers whole and its body a byte at a time held a connection
    for as long as it went on, answered or not: after REQUEST_BODY_TIMEOUT, a 408 if the API
    is still waiting for the body, the connection closed if it already answered."""
    keys = make_keys(fresh_seeded_engine)
    with serving(fresh_seeded_engine, REQUEST_BODY_TIMEOUT="1") as (_server, url):
        host, port = url.removeprefix("http://").split(":")
        address = (host, int(port))
        sent, answer = _trickle_body(address, f"Authorization: Bearer {keys['alice']}\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert json.loads(body)["detail"] == ("The request's body did not arrive whole within 1 s.")
        assert 5 < sent < 40  # 1 to 2 s (the sweep's second), at ten bytes a second
        sent, answer = _trickle_body(address, "")  # no key: answered before the body is read
        assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        assert 5 < sent < 40
        assert httpx.get(f"{url}/v1/metrics/viral-vector-lead-time").status_code == 200
        assert (
            httpx.post(
                f"{url}/v1/metrics",
                json=new_metric(),
                headers={"Authorization": f"Bearer {keys['alice']}"},
            ).status_code
            == 201
        )


# --- If-Match: * under concurrency --------------------------------------------------------

RACERS = 16


@pytest.fixture
def server(fresh_seeded_engine: Engine) -> Iterator[tuple[str, dict[str, str]]]:
    keys = make_keys(fresh_seeded_engine)
    with serving(fresh_seeded_engine, WRITE_RATE_LIMIT="10000") as (_server, url):
        yield url, {"Authorization": f"Bearer {keys['alice']}"}


def test_concurrent_patches_with_if_match_star_all_land_in_turn(
    server: tuple[str, dict[str, str]],
) -> None:
    """If-Match: * means "it exists" (RFC 9110 §13.1.1): each PATCH is applied in turn."""
    url, auth = server
    path = f"{url}/v1/metrics/viral-vector-lead-time"
    headers = {**auth, "If-Match": "*"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=RACERS) as pool:
        answers = list(
            pool.map(
                lambda n: httpx.patch(path, json={"name": f"Writer {n}"}, headers=headers),
                range(RACERS),
            )
        )
    assert [a.status_code for a in answers] == [200] * RACERS
    revisions = httpx.get(f"{path}/revisions", params={"limit": 100}).json()
    assert revisions["total"] == RACERS + 1  # the seed's, then one per PATCH
    assert httpx.get(path).json()["name"] in {f"Writer {n}" for n in range(RACERS)}


def test_if_match_star_after_a_concurrent_delete_is_404(
    server: tuple[str, dict[str, str]],
) -> None:
    url, auth = server
    created = httpx.post(f"{url}/v1/metrics", json=new_metric(), headers=auth)
    assert created.status_code == 201
    path = f"{url}/v1/metrics/{new_metric()['id']}"
    headers = {**auth, "If-Match": "*"}

    def work(n: int) -> httpx.Response:
        if n == RACERS // 2:
            return httpx.delete(path, headers=headers)
        return httpx.patch(path, json={"name": f"Writer {n}"}, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(max_workers=RACERS) as pool:
        answers = list(pool.map(work, range(RACERS)))
    codes = [a.status_code for a in answers]
    assert codes[RACERS // 2] == 204
    assert set(codes) <= {200, 204, 404}
    patched = [n for n, code in enumerate(codes) if code == 200]
    revisions = httpx.get(f"{path}/revisions", params={"limit": 100}).json()
    assert revisions["total"] == 1 + len(patched) + 1  # created, each 200 PATCH, the delete
    assert httpx.get(path).status_code == 404


def test_a_write_that_waits_out_another_writer_is_503_not_500(
    backend: str, writable: Writable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a write that waits longer than the busy timeout for the write lock another
    process holds (a long import) meets "database is locked" when it begins, where the driver
    raised it past SQLAlchemy: a 500 with a traceback. It is the 503 to retry after."""
    if backend != "sqlite":
        pytest.skip("the write lock of a file")
    from api import db

    w = writable
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 200)
    w.engine.dispose()  # connections made from here wait 200 ms
    path = "/v1/metrics/viral-vector-lead-time"
    before = w.client.get(path).json()
    holder = sqlite3.connect(str(w.engine.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answer = w.client.patch(
            path, json={"name": "Renamed"}, headers={**w.auth(), "If-Match": "*"}
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["detail"] == "The write kept meeting concurrent writes; try again shortly."
    assert w.client.get(path).json() == before
