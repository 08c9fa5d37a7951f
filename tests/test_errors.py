"""Bad input, unknown routes, wrong methods, unacceptable formats, an unreachable database:
every one answers RFC 9457 problem details, never a stack trace or HTML."""

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api import direct
from api.config import Settings
from api.db import make_engine
from api.main import create_app
from api.metrics import service
from tests.helpers import Writable, new_metric


def problem(response) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == response.status_code
    assert {"type", "title", "status", "detail"} <= set(body)
    assert "Traceback" not in response.text
    return body  # type: ignore[no-any-return]


NOT_AN_INTEGER = "must be an integer in decimal digits without leading zeros, e.g. 50"
NOT_JSON_INTEGERS = [
    ("limit", "1_0"), ("limit", "+5"), ("limit", " 5"), ("limit", "5.0"), ("offset", "0_1"),
    ("offset", "01"),
]  # fmt: skip
NOT_A_NUMBER = "must be a number as JSON writes it, e.g. 20 or 2.5e9"
NOT_JSON_NUMBERS = [
    ("value_min", "1_000"), ("value_min", " 1"), ("value_max", "+5"), ("value_max", "1."),
    ("value_min", ".5"), ("value_max", "1e"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "name", "detail"),
    [
        ({"colour": "red"}, "colour", "Unknown parameter."),
        ({"limit": 0}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": 501}, "limit", "Input should be less than or equal to 500"),
        (
            {"limit": "ten"},
            "limit",
            "must be an integer in decimal digits without leading zeros, e.g. 50",
        ),
        (
            {"limit": "1_0"},
            "limit",
            "must be an integer in decimal digits without leading zeros, e.g. 50",
        ),
        (
            {"offset": "10.0"},
            "offset",
            "must be an integer in decimal digits without leading zeros, e.g. 50",
        ),
        (
            {"value_min": "1_000"},
            "value_min",
            "must be a number as JSON writes it, e.g. 20 or 2.5e9",
        ),
        (
            {"value_max": "Infinity"},
            "value_max",
            "must be a number as JSON writes it, e.g. 20 or 2.5e9",
        ),
        ({"value_max": "1e400"}, "value_max", "Input should be a finite number"),
        ({"offset": -1}, "offset", "Input should be greater than or equal to 0"),
        # Numbers written as JSON writes them: Python's readings of "1_0" (10), "+5" or " 5"
        # (5) and "1." are not the document's integer or number.
        *(({name: text}, name, NOT_AN_INTEGER) for name, text in NOT_JSON_INTEGERS),
        *(({name: text}, name, NOT_A_NUMBER) for name, text in NOT_JSON_NUMBERS),
        ({"offset": 2**63}, "offset", "Input should be less than or equal to 1000000000"),
        (
            {"year": 2**64},
            "year",
            "has '18446744073709551616'; a year is a number from 1900 to 2200",
        ),
        # Written as the document's pattern has it: no leading zero, as no sign or space.
        ({"year": "02026"}, "year", "has '02026'; a year is a number from 1900 to 2200"),
        (
            {"base_year": "2020..02023"},
            "base_year",
            "has '02023'; a year is a number from 1900 to 2200",
        ),
        (
            {"category": "gossip"},
            "category",
            "has 'gossip'; expected any of: market, technology, regulatory, pricing, mna",
        ),
        (
            {"forecast": "perhaps"},
            "forecast",
            "has 'perhaps'; expected any of: true, false",
        ),
        ({"q": "nul\x00byte"}, "q", "must not contain NUL characters"),
        ({"q": "x" * 501}, "q", "String should have at most 500 characters"),
        (
            {"sort": "value,-colour"},
            "sort",
            "unknown '-colour'; expected a comma-separated list of: id, category, name, value, value_low, value_high, qualifier, unit, measure, direction, year, base_year, forecast, geography, cited_as, source_id",
        ),
        (
            {"sort": "value,"},
            "sort",
            "unknown ''; expected a comma-separated list of: id, category, name, value, value_low, value_high, qualifier, unit, measure, direction, year, base_year, forecast, geography, cited_as, source_id",
        ),
    ],
)
def test_bad_metric_parameters_are_422_naming_the_parameter(
    client: TestClient, params: dict[str, object], name: str, detail: str
) -> None:
    body = problem(client.get("/v1/metrics", params=params))
    assert body["status"] == 422
    assert body["errors"] == [{"in": "query", "name": name, "detail": detail}]


# What pydantic's lax mode reads as 10 or true, and no JSON (nor the OpenAPI document's
# `integer`, `number` or `boolean`) writes so.
LAX_SPELLINGS = {
    "integer": ["1_0", " 10", "10 ", "+10", "10.0", "1e1", "\u0661\u0660"],
    "number": ["1_0", " 10", "+10", ".5", "5.", "inf", "NaN", "0x10"],
    "boolean": ["yes", "on", "1", "t", "True", "TRUE", " true"],
}


def _query_type(schema: dict[str, Any]) -> str | None:
    types = [schema.get("type"), *(option.get("type") for option in schema.get("anyOf", []))]
    return next((name for name in types if name in LAX_SPELLINGS), None)


def test_every_typed_query_parameter_takes_only_its_json_spelling(client: TestClient) -> None:
    """Each integer, number and boolean parameter of every documented GET refuses the lax
    spellings, naming the parameter, and takes the JSON one."""
    document = client.get("/openapi.json").json()
    checked = set()
    for template, operations in document["paths"].items():
        if "get" not in operations:
            continue
        path = template
        parameters = operations["get"].get("parameters", [])
        for parameter in parameters:
            if parameter["in"] == "path":
                example = parameter["schema"]["examples"][0]
                path = path.replace("{" + parameter["name"] + "}", example)
        for parameter in parameters:
            kind = _query_type(parameter["schema"]) if parameter["in"] == "query" else None
            if kind is None:
                continue
            name = parameter["name"]
            checked.add((name, kind))
            for spelling in LAX_SPELLINGS[kind]:
                body = problem(client.get(path, params={name: spelling}))
                assert body["status"] == 422, (path, name, spelling)
                assert [error["name"] for error in body["errors"]] == [name], (path, spelling)
            plain = {"integer": "1", "number": "-2.5e1", "boolean": "false"}[kind]
            assert client.get(path, params={name: plain}).status_code == 200, (path, name)
    assert checked == {
        ("limit", "integer"), ("offset", "integer"), ("value_min", "number"),
        ("value_max", "number"), ("bom", "boolean"),
    }  # fmt: skip


def test_several_bad_parameters_are_all_named(client: TestClient) -> None:
    body = problem(client.get("/v1/metrics", params={"limit": 0, "unit": "yen", "x": 1}))
    assert sorted(error["name"] for error in body["errors"]) == ["limit", "unit", "x"]


def test_a_parameter_without_a_name_is_named_as_sent(client: TestClient) -> None:
    # `?=x` sends a parameter whose name is empty: the problem names it so, not "query" (a
    # parameter the client never sent).
    for path in ("/v1/metrics?=x", "/v1/technologies?=", "/v1/metrics/facets?=x&limit=2"):
        body = problem(client.get(path))
        assert body["status"] == 422
        assert {"in": "query", "name": "", "detail": "Unknown parameter."} in body["errors"]
        assert "'query'" not in body["detail"], body


def test_repeated_parameter_is_refused(client: TestClient) -> None:
    body = problem(client.get("/v1/metrics?limit=1&limit=2"))
    assert body["errors"] == [
        {"in": "query", "name": "limit", "detail": "Given more than once; pass a single value."}
    ]


@pytest.mark.parametrize(
    ("query", "name", "detail"),
    [
        ("q=%ZZ", "q", "A `%` that begins no escape: percent-encode it as %25."),
        ("limit=5&q=50%", "q", "A `%` that begins no escape: percent-encode it as %25."),
        ("geography=%E9", "geography", "Not UTF-8 once percent-decoded: encode the text as UTF-8."),
        ("q=%C3%28", "q", "Not UTF-8 once percent-decoded: encode the text as UTF-8."),
        ("caf%E9=1", "caf\ufffd", "Not UTF-8 once percent-decoded: encode the text as UTF-8."),
    ],
)
def test_a_parameter_not_utf8_percent_encoded_is_refused_not_searched_for(
    client: TestClient, query: str, name: str, detail: str
) -> None:
    """Read leniently, `%ZZ` would be searched for as itself and a Latin-1 `%E9` as U+FFFD,
    answering 200 with nothing found for a query the client never meant."""
    for path in ("/v1/metrics", "/v1/sources", "/v1/metrics/facets", "/v1/metrics.csv"):
        body = problem(client.get(f"{path}?{query}"))
        assert body["status"] == 422
        assert body["errors"] == [{"in": "query", "name": name, "detail": detail}], path
    for fine in ("q=caf%C3%A9", "q=100%25", "q=cell+therapy", "q=%22cell%20therapy%22"):
        assert client.get(f"/v1/metrics?{fine}").status_code == 200, fine


@pytest.mark.parametrize(
    "path", ["/v1/metrics/ai-cell-viability-improvement", "/v1/faq/scaling-bottlenecks"]
)
def test_item_routes_take_no_parameters(client: TestClient, path: str) -> None:
    body = problem(client.get(path, params={"fields": "id"}))
    assert body["errors"] == [{"in": "query", "name": "fields", "detail": "Unknown parameter."}]


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    body = problem(client.get("/v1/widgets"))
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No resource at /v1/widgets.",
        "instance": "/v1/widgets",
    }


@pytest.mark.parametrize(
    ("sent", "instance"),
    [
        ("/v1/metrics/a%20b", "/v1/metrics/a%20b"),
        ("/v1/metrics/%FF", "/v1/metrics/%FF"),
        ("/v1/metrics/%C3%A9t%C3%A9", "/v1/metrics/%C3%A9t%C3%A9"),
    ],
)
def test_a_problem_names_its_instance_as_the_path_was_sent(
    client: TestClient, sent: str, instance: str
) -> None:
    """`instance` is a URI reference (RFC 9457): the path percent-encoded as it came, not
    decoded (a space, or U+FFFD for a byte that is not UTF-8)."""
    body = problem(client.get(sent))
    assert (body["status"], body["instance"]) == (404, instance)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/metrics", "GET, HEAD, POST"),
        ("DELETE", "/v1/metrics", "GET, HEAD, POST"),
        ("PUT", "/v1/metrics/car-t-dose-manufacturing-cost", "DELETE, GET, HEAD, PATCH"),
        ("POST", "/v1/metrics/facets", "GET, HEAD"),  # concrete path, not /v1/metrics/{metric_id}
        ("PATCH", "/v1/changes", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_problem_listing_every_allowed_method(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert problem(response)["detail"] == f"{method} is not allowed on {path}."


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    get = client.get("/v1/metrics")
    head = client.head("/v1/metrics")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/json;q=0"])
def test_unsupported_accept_is_406(client: TestClient, accept: str) -> None:
    body = problem(client.get("/v1/metrics", headers={"Accept": accept}))
    assert body["status"] == 406


@pytest.mark.parametrize(
    "accept", ["application/json", "application/*", "*/*", "text/html, application/json;q=0.5"]
)
def test_acceptable_accept_is_served(client: TestClient, accept: str) -> None:
    assert client.get("/v1/metrics", headers={"Accept": accept}).status_code == 200


def test_unexpected_errors_are_500_problems_without_details(client: TestClient) -> None:
    app = client.app
    from api.records.reads import get_read_session as get_session

    def broken() -> None:
        raise RuntimeError("secret internals")

    app.dependency_overrides[get_session] = broken  # type: ignore[attr-defined]
    try:
        response = client.get("/v1/metrics?limit=13")  # a request no cache has seen
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    body = problem(response)
    assert body["status"] == 500
    assert "secret" not in response.text


def test_a_read_its_client_leaves_midway_ends_cleanly_and_frees_its_connection(
    seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that goes away while its read runs (the server cancels the request) leaves
    the read's thread to finish and close its session: no error, and no connection kept from
    the pool. (When the session was closed on the event loop, the cancellation closed it
    under the thread still reading it: IllegalStateChangeError, connections held.)"""
    reading = threading.Event()
    read = service.list_metrics

    def slow_read(session: Any, **arguments: Any) -> Any:
        reading.set()
        time.sleep(0.3)
        return read(session, **arguments)

    monkeypatch.setattr(service, "list_metrics", slow_read)
    # In a thread, as PostgreSQL's reads always are and SQLite's once they outlast their
    # budget on the event loop (a sleep is not SQLite's work, which that budget interrupts).
    monkeypatch.setattr(direct._OnTheLoop, "worth_trying", lambda _self, _request: False)
    app = create_app(Settings(response_cache_bytes=0), engine=seeded_engine)
    held = seeded_engine.pool.checkedout()  # type: ignore[attr-defined]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/v1/metrics", "raw_path": b"/v1/metrics",
        "query_string": b"limit=7", "root_path": "", "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def leave_midway() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        answering = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.to_thread(reading.wait, 5)
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
        await asyncio.sleep(0.6)  # the thread's read ends meanwhile
        return sent

    assert asyncio.run(leave_midway()) == []  # nothing was sent: the client had gone
    assert seeded_engine.pool.checkedout() == held  # type: ignore[attr-defined]


def test_unreachable_database_is_503_with_retry_after() -> None:
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")
    with TestClient(create_app(engine=engine), raise_server_exceptions=False) as unreachable:
        response = unreachable.get("/v1/metrics")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert problem(response)["detail"] == "The database is unreachable; try again shortly."
        assert unreachable.get("/healthz").status_code == 200
        ready = unreachable.get("/readyz")
        assert ready.status_code == 503 and problem(ready)["status"] == 503


def test_a_damaged_sqlite_file_is_503_saying_so(tmp_path: Path) -> None:
    """A file that is not (or no longer) an SQLite database: no retry will help, and the
    answer says why, without a traceback in the log; /readyz says it too."""
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"not a database " * 1000)
    engine = make_engine(f"sqlite:///{damaged}")
    with TestClient(create_app(engine=engine), raise_server_exceptions=False) as client:
        for path in ("/v1/metrics", "/v1/metrics/viral-vector-lead-time"):
            response = client.get(path)
            assert response.status_code == 503
            assert problem(response)["detail"] == (
                "The database cannot be read: its storage is damaged, and must be restored by "
                "its operator."
            )
            assert "retry-after" not in response.headers
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert problem(ready)["detail"] == "The database's storage is damaged."


def test_refused_ranges_of_static_assets_are_problems(client: TestClient) -> None:
    """Starlette answers a Range it refuses in plain text; the API, as every error, in problem
    details. A range that can be served is served (206)."""
    asset = "/docs-assets/swagger-ui.css"
    size = len(client.get(asset).content)
    past = client.get(asset, headers={"Range": f"bytes={size + 10}-"})
    assert past.status_code == 416
    assert past.headers["content-type"] == "application/problem+json"
    assert past.headers["content-range"] == f"bytes */{size}"
    assert past.json() == {
        "type": "about:blank",
        "title": "Range Not Satisfiable",
        "status": 416,
        "detail": f"The range asked for (Range) starts past the end of the file ({size} bytes).",
        "instance": asset,
    }
    malformed = client.get(asset, headers={"Range": "bytes=abc"})
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    assert (
        malformed.json()["detail"]
        == "The Range header cannot be served: Range header: range must be requested."
    )
    part = client.get(asset, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == client.get(asset).content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{size}"


@pytest.mark.parametrize("asset", ["/docs-assets/swagger-ui.css", "/explore/static/explorer.css"])
@pytest.mark.parametrize("value", ["items=0-5", "lines=1-2", "Items = 0-5", "none"])
def test_a_range_in_a_unit_the_server_does_not_know_is_ignored(
    client: TestClient, asset: str, value: str
) -> None:
    """RFC 9110 §14.2: an origin server MUST ignore a Range header with a unit it does not
    understand: the whole file, as if none had been sent. Bytes ranges are still served."""
    whole = client.get(asset)
    ignored = client.get(asset, headers={"Range": value})
    assert ignored.status_code == 200
    assert ignored.content == whole.content
    assert "content-range" not in ignored.headers
    assert client.get(asset, headers={"Range": "BYTES=0-4"}).content == whole.content[:5]


def test_a_range_of_a_cached_asset_is_a_part_not_the_cached_whole(client: TestClient) -> None:
    """The explorer's assets are cached whole (the response cache holds `/explore/`); a Range
    request still gets its part, or its refusal, whatever the cache holds."""
    asset = "/explore/static/explorer.css"
    whole = client.get(asset)
    assert whole.status_code == 200
    assert client.get(asset).status_code == 200  # now answered from the cache
    part = client.get(asset, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole.content[:10]
    past = client.get(asset, headers={"Range": f"bytes={len(whole.content) + 1}-"})
    assert past.status_code == 416
    assert past.headers["content-type"] == "application/problem+json"
    assert client.head(asset, headers={"Range": "bytes=abc"}).status_code == 400


def test_a_write_whose_client_leaves_before_its_body_ends_is_logged_499_and_writes_nothing(
    writable: Writable, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that disconnects while sending a body gets nothing (it is gone), nothing is
    written, and the log says so: 499, nginx's "client closed request", not a 400 that blames
    a body the server never had whole."""
    app = writable.client.app
    body = orjson.dumps(new_metric())
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/metrics", "raw_path": b"/v1/metrics",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"test"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in writable.auth().items()],
        ],
    }  # fmt: skip

    async def leave_midway() -> list[Any]:
        parts = [{"type": "http.request", "body": body[:20], "more_body": True},
                 {"type": "http.disconnect"}]  # fmt: skip
        sent: list[Any] = []

        async def receive() -> Any:
            return parts.pop(0) if parts else {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    with caplog.at_level("INFO", logger="api.access"):
        sent = asyncio.run(leave_midway())
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    logged = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert [(line["method"], line["status"]) for line in logged] == [("POST", 499)]
    assert writable.client.get("/v1/metrics").json()["total"] == 42
