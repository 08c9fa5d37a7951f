"""Writes: keys and scopes, validation, preconditions, idempotent retries, limits, history."""

import concurrent.futures
import copy
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import Settings
from api.db import writer
from api.main import create_app
from tests.conftest import seed, serving
from tests.helpers import SOURCE, TEXT_PATH, Writable, make_keys, new_metric


def test_the_new_metric_fixture_quotes_the_article(writable: Writable) -> None:
    text = writable.client.get(TEXT_PATH).text
    evidence = new_metric()["evidence"]
    assert isinstance(evidence, dict)
    assert text[evidence["start"] : evidence["end"]] == evidence["quote"]


# (method, path, body, scope needed) for every write operation.
def operations(w: Writable) -> list[tuple[str, str, object]]:
    technology = w.client.get("/v1/technologies/closed-system-automation").json()
    entity_bodies = {
        "/v1/technologies": technology | {"id": "closed-system-copy"},
        "/v1/pricing-models": w.client.get("/v1/pricing-models/capacity-pool").json()
        | {"id": "capacity-pool-copy"},
        "/v1/regulatory/outlook": w.client.get(
            "/v1/regulatory/outlook/ema-hospital-exemption"
        ).json()
        | {"id": "ema-copy"},
        "/v1/bottlenecks": w.client.get("/v1/bottlenecks/viral-vector-capacity").json()
        | {"id": "vector-copy", "rank": 9},
        "/v1/faq": w.client.get("/v1/faq/scaling-bottlenecks").json() | {"id": "faq-copy"},
    }
    ops: list[tuple[str, str, object]] = [("POST", "/v1/metrics", new_metric())]
    for path, body in entity_bodies.items():
        ops.append(("POST", path, body))
    ops.append(
        (
            "POST",
            "/v1/sources",
            {
                "id": "another-article",
                "title": "Another article",
                "publisher": "Somebody",
                "author": None,
                "published_on": "2026-07-01",
                "kind": "article",
                "url": "https://example.org/a",
                "text": "A short text with 12% in it.",
            },
        )
    )
    return ops


def _clean(body: object) -> object:
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in ("horizon_passed",)}
    return body


def test_key_matrix(writable: Writable) -> None:
    w = writable
    headers_by_case = {
        "none": {},
        "unknown": {"Authorization": "Bearer not-a-key"},
        "revoked": w.auth("gone"),
        "write": w.auth("alice"),
        "admin": w.auth("root"),
    }
    for method, path, body in operations(w):
        admin_only = path == "/v1/sources"
        for case, headers in headers_by_case.items():
            response = w.client.request(method, path, json=_clean(body), headers=headers)
            if case in ("none", "unknown", "revoked"):
                assert response.status_code == 401, (path, case)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.headers["content-type"] == "application/problem+json"
            elif case == "write" and admin_only:
                assert response.status_code == 403, (path, case)
            elif case == "write" or (case == "admin" and admin_only):
                assert response.status_code == 201, (path, case, response.text)
                created = response.headers["location"]
                assert w.client.get(created).status_code == 200
                # PATCH and DELETE of what was just created, with the same key.
                tag = response.headers["etag"]
                for other, other_headers in headers_by_case.items():
                    if other in ("none", "unknown", "revoked"):
                        patched = w.client.patch(
                            created, json={"name": "no"}, headers={**other_headers, "If-Match": tag}
                        )
                        assert patched.status_code == 401
                        removed = w.client.delete(
                            created, headers={**other_headers, "If-Match": tag}
                        )
                        assert removed.status_code == 401
                    if other == "write" and admin_only:
                        forbidden = w.client.delete(
                            created, headers={**other_headers, "If-Match": tag}
                        )
                        assert forbidden.status_code == 403
                field = "title" if admin_only else "name"
                patched = w.client.patch(
                    created, json={field: "Patched"}, headers={**headers, "If-Match": tag}
                )
                assert patched.status_code == 200, (created, patched.text)
                assert patched.json()[field] == "Patched"
                removed = w.client.delete(
                    created, headers={**headers, "If-Match": patched.headers["etag"]}
                )
                assert removed.status_code == 204
                assert w.client.get(created).status_code == 404


# Requests a key holder would be refused for something else: 401 (or 403) comes first.
UNREADABLE = {
    "malformed JSON": ({"Content-Type": "application/json"}, b'{"name": ', ""),
    "not UTF-8": ({"Content-Type": "application/json"}, b'{"name": "\xff"}', ""),
    "not JSON": ({"Content-Type": "text/plain"}, b"name=x", ""),
    "unknown parameter": ({"Content-Type": "application/json"}, b"{}", "?dry_run=true"),
    "unservable Accept": ({"Content-Type": "application/json", "Accept": "text/csv"}, b"{}", ""),
}
WRITE_TARGETS = {
    "/v1/metrics": "/v1/metrics/viral-vector-lead-time",
    "/v1/technologies": "/v1/technologies/closed-system-automation",
    "/v1/pricing-models": "/v1/pricing-models/capacity-pool",
    "/v1/regulatory/outlook": "/v1/regulatory/outlook/ema-hospital-exemption",
    "/v1/bottlenecks": "/v1/bottlenecks/viral-vector-capacity",
    "/v1/faq": "/v1/faq/scaling-bottlenecks",
    "/v1/sources": "/v1/sources/coreychem-future-of-cdmos-2026",
}


def test_the_key_is_checked_before_the_request_is_read(writable: Writable) -> None:
    """Without a valid key (none, unknown, revoked) every write is a 401, and a key of too
    small a scope a 403, whatever its body, parameters or Accept: an anonymous client learns
    nothing of how they would have been read. Nothing is written."""
    # Each case is a failed authentication: more of them than one address may make by default.
    settings = Settings(auth_failure_limit=10_000)
    with TestClient(create_app(settings, engine=writable.engine)) as client:
        _refuse_every_unadmitted_write(Writable(client, writable.engine, writable.keys))


def _refuse_every_unadmitted_write(w: Writable) -> None:
    before = {path: w.client.get(f"{path}?limit=500").json() for path in WRITE_TARGETS}
    refused_keys = {
        "no key": ({}, 401, "This operation needs an API key: Authorization: Bearer <key>."),
        "unknown key": ({"Authorization": "Bearer not-a-key"}, 401, "The API key is not valid."),
        "revoked key": (w.auth("gone"), 401, "The API key 'gone' has been revoked."),
    }
    for collection, item in WRITE_TARGETS.items():
        keys = dict(refused_keys)
        if collection == "/v1/sources":
            detail = "The key 'alice' has scope 'write'; this needs 'admin'."
            keys["write key on a source"] = (w.auth("alice"), 403, detail)
        tag = w.etag(item)
        for case, (headers, body, query) in UNREADABLE.items():
            for method, path in (("POST", collection), ("PATCH", item), ("DELETE", item)):
                for who, (key, status, detail) in keys.items():
                    sent = {**headers, **key, "If-Match": tag}
                    answer = w.client.request(method, path + query, content=body, headers=sent)
                    where = (method, path, case, who)
                    assert answer.status_code == status, (*where, answer.text)
                    assert answer.headers["content-type"] == "application/problem+json", where
                    assert answer.json()["detail"] == detail, where
                    if status == 401:
                        assert answer.headers["www-authenticate"].startswith("Bearer"), where
    assert {path: w.client.get(f"{path}?limit=500").json() for path in WRITE_TARGETS} == before


def test_a_key_holder_still_learns_what_is_wrong_with_the_request(writable: Writable) -> None:
    """Once the key is admitted, the request's own faults are named as before."""
    w = writable
    path = "/v1/metrics/viral-vector-lead-time"
    sent = {**w.auth(), "If-Match": w.etag(path)}
    statuses = {}
    for case, (headers, body, query) in UNREADABLE.items():
        for method, target in (("POST", "/v1/metrics"), ("PATCH", path)):
            answer = w.client.request(
                method, target + query, content=body, headers={**sent, **headers}
            )
            assert answer.headers["content-type"] == "application/problem+json"
            statuses[case, method] = answer.status_code
    assert statuses == {
        ("malformed JSON", "POST"): 422, ("malformed JSON", "PATCH"): 422,
        ("not UTF-8", "POST"): 422, ("not UTF-8", "PATCH"): 422,
        ("not JSON", "POST"): 415, ("not JSON", "PATCH"): 415,
        ("unknown parameter", "POST"): 422, ("unknown parameter", "PATCH"): 422,
        ("unservable Accept", "POST"): 406, ("unservable Accept", "PATCH"): 406,
    }  # fmt: skip
    malformed = w.client.patch(path, content=b'{"name": ', headers={**sent, **UNREADABLE[
        "malformed JSON"][0]})  # fmt: skip
    assert malformed.json()["errors"] == [
        {"in": "body", "name": "body", "detail": "not valid JSON at character 9: Expecting value"}
    ]
    assert w.client.get(path).headers["etag"] == sent["If-Match"]


def test_create_validates_like_the_loader_and_changes_nothing_when_refused(
    writable: Writable,
) -> None:
    w = writable
    before = w.client.get("/v1/metrics?limit=500").json()
    cases = {
        "evidence": new_metric(evidence={"quote": "Not in the article.", "start": 0, "end": 19}),
        "version": new_metric(version=3),
        "horizon_passed": new_metric(horizon_passed=False),
        "id": new_metric(id="Not A Slug"),
        "unit": new_metric(unit="yen"),
        "value_low": new_metric(value_low=9.0),
        "baseline_id": new_metric(baseline_id="no-such-metric"),
        "source_id": new_metric(source_id="no-such-source"),
    }
    for field, body in cases.items():
        response = w.client.post("/v1/metrics", json=body, headers=w.auth())
        assert response.status_code == 422, (field, response.text)
        names = [error["name"] for error in response.json()["errors"]]
        assert field in names, (field, names)
    assert w.client.get("/v1/metrics?limit=500").json() == before
    duplicate = w.client.post(
        "/v1/metrics", json=new_metric(id="viral-vector-lead-time"), headers=w.auth()
    )
    assert duplicate.status_code == 409


def test_created_metric_is_served_searched_and_has_a_revision(writable: Writable) -> None:
    w = writable
    response = w.client.post("/v1/metrics", json=new_metric(), headers=w.auth())
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/metrics/quality-failure-cost-multiple-copy"
    served = w.client.get(response.headers["location"])
    assert served.json() == response.json()
    assert served.headers["etag"] == response.headers["etag"]
    assert served.json()["value"] == 3.5
    found = w.client.get("/v1/metrics", params={"q": "copy"}).json()["items"]
    assert [m["id"] for m in found] == ["quality-failure-cost-multiple-copy"]
    revisions = w.client.get(f"{response.headers['location']}/revisions").json()
    assert revisions["total"] == 1
    assert revisions["items"][0]["action"] == "create"
    assert revisions["items"][0]["actor"] == "alice"
    assert w.client.get("/v1/metrics").json()["total"] == 43


def test_patch_needs_a_current_if_match_and_changes_nothing_otherwise(writable: Writable) -> None:
    w = writable
    path = "/v1/metrics/viral-vector-lead-time"
    before = w.client.get(path).json()
    missing = w.client.patch(path, json={"name": "x"}, headers=w.auth())
    assert missing.status_code == 428
    stale = w.client.patch(path, json={"name": "x"}, headers={**w.auth(), "If-Match": '"old"'})
    assert stale.status_code == 412
    assert w.client.get(path).json() == before
    tag = w.etag(path)
    patched = w.client.patch(
        path,
        content=json.dumps({"name": "Viral vector lead time, corrected", "geography": None}),
        headers={**w.auth(), "If-Match": tag, "Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Viral vector lead time, corrected"
    assert patched.json()["geography"] is None
    assert patched.headers["etag"] != tag
    again = w.client.patch(path, json={"name": "y"}, headers={**w.auth(), "If-Match": tag})
    assert again.status_code == 412
    renamed = w.client.patch(
        path, json={"id": "other"}, headers={**w.auth(), "If-Match": patched.headers["etag"]}
    )
    assert renamed.status_code == 422
    revisions = w.client.get(f"{path}/revisions").json()["items"]
    assert [r["action"] for r in revisions] == ["update", "create"]
    assert revisions[0]["changes"] == ["geography", "name"]
    assert revisions[0]["data"]["name"] == "Viral vector lead time, corrected"


def test_delete_leaves_a_tombstone_and_refuses_referenced_records(writable: Writable) -> None:
    w = writable
    baseline = "/v1/metrics/monoclonal-antibody-batch-manufacturing-cost"
    refused = w.client.delete(baseline, headers={**w.auth(), "If-Match": w.etag(baseline)})
    assert refused.status_code == 409
    assert "car-t-dose-manufacturing-cost" in refused.json()["detail"]
    source = f"/v1/sources/{SOURCE}"
    refused = w.client.delete(source, headers={**w.auth("root"), "If-Match": w.etag(source)})
    assert refused.status_code == 409
    # The first ten of what refers to it, named by kind and id: the same on both databases.
    listed = refused.json()["detail"].split(" is referred to by ", 1)[1]
    named = re.findall(r"(?:^|, )(\w[\w ]*?) '([^']+)' \((\w+)\)", listed)
    assert len(named) == 10 and named == sorted(named), named
    assert refused.json()["detail"].endswith(" more.")
    faq = "/v1/faq/scaling-bottlenecks"
    assert w.client.delete(faq, headers={**w.auth(), "If-Match": w.etag(faq)}).status_code == 204
    assert w.client.get(faq).status_code == 404
    revisions = w.client.get(f"{faq}/revisions").json()["items"]
    assert revisions[0]["action"] == "delete" and revisions[0]["data"] is None
    assert w.client.get("/v1/faq/never-existed/revisions").status_code == 404


def test_idempotent_post(writable: Writable) -> None:
    w = writable
    headers = {**w.auth(), "Idempotency-Key": "retry-1"}
    first = w.client.post("/v1/metrics", json=new_metric(), headers=headers)
    retry = w.client.post("/v1/metrics", json=new_metric(), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert w.client.get("/v1/metrics").json()["total"] == 43
    other = w.client.post("/v1/metrics", json=new_metric(name="Different"), headers=headers)
    assert other.status_code == 422
    # The header is named as the OpenAPI document names the parameter, whatever is wrong.
    malformed = w.client.post(
        "/v1/metrics", json=new_metric(), headers={**w.auth(), "Idempotency-Key": "a b"}
    )
    assert malformed.status_code == 422
    declared = {
        p["name"]
        for p in w.client.get("/openapi.json").json()["paths"]["/v1/metrics"]["post"]["parameters"]
        if p.get("in") == "header"
    }
    assert other.json()["errors"][0]["name"] == malformed.json()["errors"][0]["name"]
    assert other.json()["errors"][0]["name"] in declared


def test_a_write_answers_the_headers_its_operation_declares(writable: Writable) -> None:
    """A generated client reads a write's `ETag` (to chain the next PATCH) and `Location` from
    what the OpenAPI document declares: each declared header is sent, and nothing the client
    needs is left undeclared."""
    w = writable
    operations = w.client.get("/openapi.json").json()["paths"]
    created_declared = set(operations["/v1/metrics"]["post"]["responses"]["201"]["headers"])
    updated_declared = set(
        operations["/v1/metrics/{metric_id}"]["patch"]["responses"]["200"]["headers"]
    )
    deleted_declared = set(
        operations["/v1/metrics/{metric_id}"]["delete"]["responses"]["204"]["headers"]
    )
    every = {"X-Request-ID"}
    assert created_declared == every | {
        "ETag",
        "Location",
        "Idempotent-Replayed",
        "Dataset-Version",
    }
    assert updated_declared == every | {"ETag", "Dataset-Version"}
    assert deleted_declared == every | {"Dataset-Version"}
    headers = {**w.auth(), "Idempotency-Key": "declared-1"}
    created = w.client.post("/v1/metrics", json=new_metric(), headers=headers)
    replayed = w.client.post("/v1/metrics", json=new_metric(), headers=headers)
    assert created.status_code == replayed.status_code == 201
    assert {"etag", "location"} <= set(created.headers)
    assert {"etag", "location", "idempotent-replayed"} <= set(replayed.headers)
    location = created.headers["location"]
    assert w.client.get(location).headers["etag"] == created.headers["etag"]
    updated = w.client.patch(
        location,
        json={"description": "Changed."},
        headers={**w.auth(), "If-Match": created.headers["etag"]},
    )
    assert updated.status_code == 200
    assert w.client.get(location).headers["etag"] == updated.headers["etag"]
    deleted = w.client.delete(location, headers={**w.auth(), "If-Match": updated.headers["etag"]})
    assert deleted.status_code == 204
    # Each write names the version it made; a replay, which makes none, the current one.
    made = [created, replayed, updated, deleted]
    assert [a.headers["dataset-version"] for a in made] == ["2", "2", "3", "4"]
    assert w.client.get("/v1/metrics").headers["dataset-version"] == "4"
    again = w.client.post("/v1/metrics", json=new_metric(), headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["dataset-version"] == "4"


def test_oversized_bodies_are_refused_before_they_are_read(writable: Writable) -> None:
    w = writable
    big = new_metric(description="x" * (1024 * 1024 + 1))
    response = w.client.post("/v1/metrics", json=big, headers=w.auth())
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 4096

    exact = w.client.post(
        "/v1/metrics",
        content=b"x" * (1024 * 1024 + 1),
        headers={**w.auth(), "Content-Type": "application/json"},
    )
    assert exact.status_code == 413  # 1 MiB + 1 byte
    at_limit = w.client.post(
        "/v1/metrics",
        content=b"x" * (1024 * 1024),
        headers={**w.auth(), "Content-Type": "application/json"},
    )
    assert at_limit.status_code == 422  # read whole, and refused as malformed JSON
    chunked = w.client.post(
        "/v1/metrics", content=chunks(), headers={**w.auth(), "Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    # One title and one JSON form, whichever layer refused the body (a declared length is
    # refused before the framework runs; a chunked body once the framework has counted it).
    assert chunked.json()["title"] == exact.json()["title"] == "Content Too Large"
    assert b", " not in exact.content and b'": ' not in exact.content
    assert w.client.get("/v1/metrics").json()["total"] == 42


def test_a_body_that_is_not_json_is_415_and_malformed_json_names_the_body(
    writable: Writable,
) -> None:
    w = writable
    path = "/v1/metrics/car-t-dose-manufacturing-cost"
    for method, url, media in (
        ("POST", "/v1/metrics", "text/plain"),
        ("POST", "/v1/metrics", "application/x-www-form-urlencoded"),
        ("PATCH", path, "application/xml; charset=utf-8"),
    ):
        headers = {**w.auth(), "If-Match": w.etag(path), "Content-Type": media}
        answer = w.client.request(method, url, content=b'{"name": "x"}', headers=headers)
        assert answer.status_code == 415, (method, media)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == (
            f"A body of type {media.split(';')[0]} cannot be read: send JSON "
            "(Content-Type: application/json)."
        )
    # JSON is UTF-8: a body declared in another charset would be misread, so it is not read.
    for media in ("application/json; charset=latin-1", 'application/json;charset="UTF-16"'):
        headers = {**w.auth(), "If-Match": w.etag(path), "Content-Type": media}
        answer = w.client.patch(path, content=b'{"name": "x"}', headers=headers)
        assert answer.status_code == 415, media
        assert answer.json()["detail"].startswith("A body in charset ")
    for media in ("application/json; charset=utf-8", "application/json; charset=UTF-8"):
        headers = {**w.auth(), "If-Match": w.etag(path), "Content-Type": media}
        answer = w.client.patch(path, content=b'{"description": "x"}', headers=headers)
        assert answer.status_code == 200, (media, answer.text)
    # Without a key, the key is what is missing.
    anonymous = w.client.post("/v1/metrics", content=b"{}", headers={"Content-Type": "text/plain"})
    assert anonymous.status_code == 401
    malformed = w.client.post(
        "/v1/metrics", content=b"{bad", headers={**w.auth(), "Content-Type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.json()["errors"] == [
        {
            "in": "body",
            "name": "body",
            "detail": "not valid JSON at character 1: Expecting property name enclosed in double "
            "quotes",
        }
    ]
    # Bodies json.loads fails on otherwise (not UTF-8; nested past the interpreter's depth):
    # the same 422, not the framework's bare 400.
    # A valid metric in UTF-16 or UTF-32 (which Python's reader would take: RFC 8259 8.1 says
    # JSON between systems is UTF-8) is refused as not UTF-8, nothing written.
    valid = orjson.dumps(new_metric()).decode()
    for body, reason in (
        (b'{"name": "\xff"}', "the body is not UTF-8 text"),
        (valid.encode("utf-16"), "the body is not UTF-8 text"),
        (valid.encode("utf-16-le"), "the body is not UTF-8 text"),
        (valid.encode("utf-32"), "the body is not UTF-8 text"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply to read"),
    ):
        unreadable = w.client.post(
            "/v1/metrics", content=body, headers={**w.auth(), "Content-Type": "application/json"}
        )
        assert unreadable.status_code == 422
        assert unreadable.headers["content-type"] == "application/problem+json"
        assert (
            unreadable.json()["detail"] == f"Invalid input: body 'body': not valid JSON: {reason}."
        )
        assert unreadable.json()["errors"] == [
            {"in": "body", "name": "body", "detail": f"not valid JSON: {reason}"}
        ]
    assert w.client.get("/v1/metrics").json()["total"] == 42


def test_writes_are_rate_limited_per_key(fresh_seeded_engine: Engine) -> None:
    keys = make_keys(fresh_seeded_engine)
    settings = Settings(write_rate_limit=3, write_rate_window=3600)
    with TestClient(create_app(settings, engine=fresh_seeded_engine)) as client:
        headers = {"Authorization": f"Bearer {keys['alice']}"}
        statuses = [
            client.post("/v1/metrics", json={"id": "x"}, headers=headers).status_code
            for _ in range(5)
        ]
        assert statuses == [422, 422, 422, 429, 429]
        limited = client.post("/v1/metrics", json={"id": "x"}, headers=headers)
        assert 1 <= int(limited.headers["retry-after"]) <= 3600
        other = {"Authorization": f"Bearer {keys['root']}"}
        assert client.post("/v1/metrics", json={"id": "x"}, headers=other).status_code == 422


def test_reseeding_keeps_an_analysts_correction(writable: Writable, seed_copy: object) -> None:
    w = writable
    path = "/v1/metrics/viral-vector-lead-time"
    corrected = w.client.patch(
        path, json={"name": "Corrected"}, headers={**w.auth(), "If-Match": w.etag(path)}
    )
    assert corrected.status_code == 200
    from api.dataset import read_datasets
    from api.records.loading import load_datasets
    from tests.conftest import SEED_DIR

    with Session(writer(w.engine)) as session, session.begin():
        report = load_datasets(session, read_datasets(SEED_DIR / "data", SEED_DIR / "sources"))
    assert report.kept == ["metric 'viral-vector-lead-time' (edited by alice)"]
    assert report.conflicts == [] and report.release_id is None
    assert w.client.get(path).json()["name"] == "Corrected"


def test_reseeding_keeps_an_analysts_deletion(writable: Writable, seed_copy: object) -> None:
    """A seeded record an analyst deleted stays deleted when the seed runs again (`make run`
    and the image seed at every start), reported as kept, as a correction is."""
    w = writable
    path = "/v1/faq/traditional-vs-personalized-cdmo"
    deleted = w.client.delete(path, headers={**w.auth(), "If-Match": w.etag(path)})
    assert deleted.status_code == 204
    from api.dataset import read_datasets
    from api.records.loading import load_datasets
    from tests.conftest import SEED_DIR

    with Session(writer(w.engine)) as session, session.begin():
        report = load_datasets(session, read_datasets(SEED_DIR / "data", SEED_DIR / "sources"))
    assert report.kept == ["faq 'traditional-vs-personalized-cdmo' (deleted by alice)"]
    assert report.release_id is None
    assert w.client.get(path).status_code == 404


def test_changes_feed_and_releases(writable: Writable) -> None:
    w = writable
    releases = w.client.get("/v1/releases").json()
    assert releases["total"] == 1
    assert (releases["items"][0]["added"], releases["items"][0]["actor"]) == (67, "seed")
    everything = w.client.get("/v1/changes", params={"limit": 500}).json()
    assert everything["total"] == 67
    path = "/v1/metrics/viral-vector-lead-time"
    w.client.patch(path, json={"name": "Z"}, headers={**w.auth(), "If-Match": w.etag(path)})
    last = w.client.get("/v1/changes", params={"limit": 500}).json()["items"][-1]
    since = w.client.get("/v1/changes", params={"since": last["at"]}).json()
    assert [c["record_id"] for c in since["items"]] == ["viral-vector-lead-time"]
    assert w.client.get("/v1/changes", params={"since": "2026-01-01"}).status_code == 422


def test_concurrent_patches_with_one_if_match_let_exactly_one_through(
    fresh_seeded_engine: Engine,
) -> None:
    keys = make_keys(fresh_seeded_engine)
    with serving(fresh_seeded_engine, WRITE_RATE_LIMIT="1000") as (_server, url):
        path = f"{url}/v1/metrics/viral-vector-lead-time"
        tag = httpx.get(path).headers["etag"]
        headers = {"Authorization": f"Bearer {keys['alice']}", "If-Match": tag}

        def patch(n: int) -> int:
            return httpx.patch(
                path, json={"name": f"Writer {n}"}, headers=headers, timeout=30
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(patch, range(20)))
        assert sorted(statuses) == [200] + [412] * 19, statuses
        stored = httpx.get(path).json()
        revisions = httpx.get(f"{path}/revisions").json()["items"]
        assert [r["action"] for r in revisions] == ["update", "create"]
        assert revisions[0]["data"]["name"] == stored["name"]
        assert stored["name"].startswith("Writer ")


def test_import_cli_loads_a_new_source_as_one_release(writable: Writable, tmp_path: object) -> None:
    from pathlib import Path

    import yaml

    from api.dataset import read_dataset
    from api.records.loading import load_datasets

    folder = Path(str(tmp_path))
    (folder / "short.txt").write_text("Prices fell by 12% in 2025.", encoding="utf-8")
    data = {
        "source": {
            "id": "short-note",
            "title": "A short note",
            "publisher": "Test",
            "published_on": "2026-01-02",
            "kind": "report",
            "text_file": "short.txt",
        },
        "metrics": [
            {
                **copy.deepcopy({k: v for k, v in new_metric().items() if k != "source_id"}),
                "id": "prices-fell-2025",
                "category": "pricing",
                "name": "Price fall, 2025",
                "value": 12,
                "value_low": 12,
                "value_high": 12,
                "unit": "percent",
                "measure": "change",
                "direction": "decrease",
                "year": 2025,
                "evidence": {"quote": "Prices fell by 12% in 2025.", "start": 0, "end": 27},
            }
        ],
    }
    (folder / "short.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with Session(writer(writable.engine)) as session, session.begin():
        report = load_datasets(
            session, [read_dataset(folder / "short.yaml", folder)], actor="import", label="note"
        )
    assert str(report.counts["metrics"]) == "+1 ~0 -0 =0"
    releases = writable.client.get("/v1/releases").json()["items"]
    assert (releases[0]["label"], releases[0]["actor"], releases[0]["added"]) == (
        "note",
        "import",
        2,
    )
    assert writable.client.get("/v1/metrics/prices-fell-2025").json()["value"] == 12


def test_as_of_answers_with_the_data_as_it_stood(writable: Writable) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    w = writable
    before_seed = "2000-01-01T00:00:00Z"
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.05)
    path = "/v1/metrics/viral-vector-lead-time"
    old = w.client.get(path)
    patched = w.client.patch(
        path, json={"name": "Zyxwv name"}, headers={**w.auth(), "If-Match": old.headers["etag"]}
    )
    assert patched.status_code == 200
    assert w.client.post("/v1/metrics", json=new_metric(), headers=w.auth()).status_code == 201
    faq = "/v1/faq/scaling-bottlenecks"
    assert w.client.delete(faq, headers={**w.auth(), "If-Match": w.etag(faq)}).status_code == 204

    then = w.client.get(path, params={"as_of": moment})
    assert then.json() == old.json()
    assert then.headers["etag"] not in (old.headers["etag"], patched.headers["etag"])
    assert w.client.get("/v1/metrics", params={"as_of": moment}).json()["total"] == 42
    assert w.client.get("/v1/metrics").json()["total"] == 43
    assert w.client.get(faq, params={"as_of": moment}).status_code == 200  # deleted later
    assert w.client.get(faq).status_code == 404
    assert (
        w.client.get(
            "/v1/metrics/quality-failure-cost-multiple-copy", params={"as_of": moment}
        ).status_code
        == 404
    )
    searched = w.client.get("/v1/metrics", params={"as_of": moment, "q": "zyxwv"}).json()
    assert searched["total"] == 0
    csv_then = w.client.get("/v1/metrics.csv", params={"as_of": moment}).text
    assert "Zyxwv name" not in csv_then and "viral-vector-lead-time" in csv_then
    facets = w.client.get("/v1/metrics/facets", params={"as_of": moment, "facet": "source"}).json()
    assert facets["total"] == 42

    empty = w.client.get("/v1/metrics", params={"as_of": before_seed}).json()
    assert empty["total"] == 0
    assert w.client.get(f"/v1/sources/{SOURCE}", params={"as_of": before_seed}).status_code == 404
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert w.client.get(path, params={"as_of": future}).json()["name"] == "Zyxwv name"
    history = w.client.get(f"{path}/revisions", params={"as_of": moment}).json()
    assert [r["action"] for r in history["items"]] == ["create"]
    assert w.client.get("/v1/metrics", params={"as_of": "yesterday"}).status_code == 422
    assert w.client.get("/v1/metrics", params={"as_of": "2026-11-26T00:00:00"}).status_code == 422


def test_reseeding_cannot_remove_a_metric_an_analysts_record_refers_to(
    writable: Writable, seed_copy: Path
) -> None:
    import yaml

    from api.dataset import DatasetError

    w = writable
    pointer = new_metric(baseline_id="quality-failure-cost-multiple")
    assert w.client.post("/v1/metrics", json=pointer, headers=w.auth()).status_code == 201
    path = next((seed_copy / "data").glob("*.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["metrics"] = [m for m in data["metrics"] if m["id"] != "quality-failure-cost-multiple"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    before = w.client.get("/v1/metrics", params={"limit": 500}).json()
    with pytest.raises(DatasetError) as refused:
        seed(w.engine, seed_copy)
    assert (
        "metrics[quality-failure-cost-multiple]: cannot be removed, metric "
        "'quality-failure-cost-multiple-copy' still refers to it (baseline_id)"
    ) in str(refused.value)
    assert w.client.get("/v1/metrics", params={"limit": 500}).json() == before


def test_figures_read_alike_in_writes_reads_revisions_and_changes(writable: Writable) -> None:
    """A figure has one text everywhere: 1e-7 (not 1e-07) in the write's answer as in a
    read, and 150000000000 (not 150000000000.0) in revisions and the change feed as in the
    item."""
    w = writable
    text = "A made-up sentence: impurities fell to 0.0000001% of the dose."
    source = {
        "id": "tiny-figures", "title": "Tiny figures", "publisher": "Tests",
        "published_on": "2026-01-01", "kind": "report", "text": text,
    }  # fmt: skip
    assert w.client.post("/v1/sources", json=source, headers=w.auth("root")).status_code == 201
    tiny = new_metric(
        id="tiny-impurity-share", measure="share", unit="percent", value=1e-7, value_low=1e-7,
        value_high=1e-7, source_id="tiny-figures",
        evidence={"quote": text, "start": 0, "end": len(text)},
    )  # fmt: skip
    created = w.client.post("/v1/metrics", json=tiny, headers=w.auth())
    assert created.status_code == 201, created.text
    served = w.client.get("/v1/metrics/tiny-impurity-share")
    assert created.content == served.content
    assert b'"value":1e-7,' in served.content
    for export in (
        "/v1/metrics.csv",
        "/v1/metrics.ndjson",
        "/v1/changes.csv",
        "/v1/changes.ndjson",
    ):
        body = w.client.get(
            export, params={"source": "tiny-figures"} if "metrics" in export else {}
        )
        assert b"1e-7" in body.content and b"1e-07" not in body.content, export
    seeded = "/v1/metrics/personalized-cancer-medicine-market-size-2028"
    raw = w.client.get(f"{seeded}/revisions").content
    assert b"150000000000.0" not in raw and b'"value":150000000000,' in raw
    for export in ("/v1/changes?limit=500", "/v1/changes.ndjson", "/v1/changes.csv"):
        body = w.client.get(export)
        assert body.status_code == 200
        assert b"150000000000.0" not in body.content, export
        assert b"150000000000" in body.content, export


def test_a_write_with_a_query_parameter_is_refused_and_changes_nothing(writable: Writable) -> None:
    w = writable
    path = "/v1/metrics/viral-vector-lead-time"
    tag = w.etag(path)
    answers = [
        w.client.post("/v1/metrics?dry_run=true", json=new_metric(), headers=w.auth()),
        w.client.patch(f"{path}?x=1", json={"name": "Z"}, headers={**w.auth(), "If-Match": tag}),
        w.client.delete(f"{path}?force=1", headers={**w.auth(), "If-Match": tag}),
    ]
    expected = [["dry_run"], ["x"], ["force"]]
    for answer, names in zip(answers, expected, strict=True):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [error["name"] for error in answer.json()["errors"]] == names
    assert w.client.get("/v1/metrics/quality-failure-cost-multiple-copy").status_code == 404
    assert w.etag(path) == tag


def test_a_body_without_a_content_type_is_415(writable: Writable) -> None:
    w = writable
    body = json.dumps(new_metric()).encode()
    answer = w.client.post("/v1/metrics", content=body, headers=w.auth())
    assert "content-type" not in {name.lower() for name in answer.request.headers}
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "send JSON" in answer.json()["detail"]
    assert w.client.get("/v1/metrics/quality-failure-cost-multiple-copy").status_code == 404


def test_a_baseline_cannot_move_to_another_source_away_from_the_metrics_compared_with_it(
    writable: Writable,
) -> None:
    """The same-source rule holds from both sides: a metric may not name a baseline of another
    source, nor may a baseline move to another source while a metric still names it."""
    w = writable
    seeded = "coreychem-future-of-cdmos-2026"
    copy = {
        "id": "a-copy", "title": "A copy of the article", "publisher": "Tests",
        "published_on": "2026-01-01", "kind": "report",
        "text": w.client.get(f"/v1/sources/{seeded}/text").text,
    }  # fmt: skip
    assert w.client.post("/v1/sources", json=copy, headers=w.auth("root")).status_code == 201
    pointer = new_metric(baseline_id="quality-failure-cost-multiple")
    assert w.client.post("/v1/metrics", json=pointer, headers=w.auth()).status_code == 201
    baseline = "/v1/metrics/quality-failure-cost-multiple"
    before = w.client.get(baseline)
    moved = w.client.patch(
        baseline,
        json={"source_id": "a-copy"},
        headers={**w.auth(), "If-Match": before.headers["etag"]},
    )
    assert moved.status_code == 422, moved.text
    assert moved.headers["content-type"] == "application/problem+json"
    assert moved.json()["errors"] == [
        {
            "in": "body",
            "name": "source_id",
            "detail": "metric 'quality-failure-cost-multiple-copy' is compared against this one "
            f"(baseline_id) and is from source {seeded!r}",
        }
    ]
    assert w.client.get(baseline).content == before.content
    # Once the metric compared against it lets go, the baseline may move.
    path = "/v1/metrics/quality-failure-cost-multiple-copy"
    let_go = w.client.patch(
        path, json={"baseline_id": None}, headers={**w.auth(), "If-Match": w.etag(path)}
    )
    assert let_go.status_code == 200, let_go.text
    moved = w.client.patch(
        baseline, json={"source_id": "a-copy"}, headers={**w.auth(), "If-Match": w.etag(baseline)}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["source_id"] == "a-copy"


METRIC_PATH = "/v1/metrics/viral-vector-lead-time"


@pytest.mark.parametrize(
    ("method", "body", "named"),
    [
        ("PATCH", b'{"name": "First", "name": "Second"}', ["name"]),
        (
            "PATCH",
            b'{"evidence": {"quote": "a", "start": 0, "quote": "b", "end": 1}}',
            ["evidence.quote"],
        ),
        (
            "PATCH",
            b'{"subjects": [{"a": 1, "a": 2}], "name": "n", "name": "m"}',
            ["name", "subjects[0].a"],
        ),
        # The earlier value of a repeated member, itself with a repeated name: by name alone.
        ("PATCH", b'{"evidence": {"x": 1, "x": 2}, "evidence": {}}', ["evidence", "x"]),
        ("POST", b'{"id": "x", "id": "y", "name": "n", "name": "m"}', ["id", "name"]),
    ],
)
def test_a_body_naming_a_member_twice_is_refused_not_guessed(
    writable: Writable, method: str, body: bytes, named: list[str]
) -> None:
    w = writable
    before = w.client.get(METRIC_PATH).content
    headers = {**w.auth(), "Content-Type": "application/json"}
    if method == "PATCH":
        headers["If-Match"] = w.etag(METRIC_PATH)
    path = METRIC_PATH if method == "PATCH" else "/v1/metrics"
    refused = w.client.request(method, path, content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [
        {"in": "body", "name": name, "detail": "appears more than once in one object"}
        for name in named
    ]
    assert w.client.get(METRIC_PATH).content == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"value": 1' + b"0" * 5000 + b"}", "holds an integer of 5,001 digits, too long to read"),
        (b'{"value": 1e-400}', "holds 1e-400, too small to be told from 0"),
        (b'{"value": -2.5E-999}', "holds -2.5E-999, too small to be told from 0"),
    ],
)
def test_a_number_that_cannot_be_read_as_written_is_refused(
    writable: Writable, body: bytes, detail: str
) -> None:
    """Python's reader would read 1e-400 as 0, and a 5,000-digit integer not at all (a 400
    saying the body did not parse): a 422 says which number."""
    w = writable
    before = w.client.get(METRIC_PATH).content
    headers = {**w.auth(), "Content-Type": "application/json", "If-Match": w.etag(METRIC_PATH)}
    refused = w.client.patch(METRIC_PATH, content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"in": "body", "name": "body", "detail": detail}]
    assert w.client.get(METRIC_PATH).content == before
    assert w.client.patch(METRIC_PATH, content=b'{"value": 0.0e-400}', headers=headers).json()[
        "errors"
    ] != [{"in": "body", "name": "body", "detail": "holds 0.0e-400, too small to be told from 0"}]


def test_a_body_in_a_content_coding_is_415_and_writes_nothing(writable: Writable) -> None:
    # The API reads bodies as they are sent (identity): one declared gzip (or any coding) was
    # read as plain JSON when it was plain, and refused as "not UTF-8" when it really was
    # compressed. RFC 9110 15.5.16: a 415 naming the codings it reads, in Accept-Encoding.
    w = writable
    path = "/v1/metrics/car-t-dose-manufacturing-cost"
    tag = w.etag(path)
    body = json.dumps(new_metric()).encode()
    for method, url, content, declared, coding in (
        ("POST", "/v1/metrics", gzip.compress(body), "gzip", "gzip"),
        ("POST", "/v1/metrics", body, "gzip", "gzip"),
        ("POST", "/v1/metrics", body, "br", "br"),
        ("POST", "/v1/metrics", body, "identity, GZIP", "GZIP"),
        ("PATCH", path, b'{"name": "Renamed"}', "deflate", "deflate"),
    ):
        headers = {
            **w.auth(),
            "If-Match": tag,
            "Content-Type": "application/json",
            "Content-Encoding": declared,
        }
        answer = w.client.request(method, url, content=content, headers=headers)
        assert answer.status_code == 415, (method, coding, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["accept-encoding"] == "identity"
        problem = answer.json()
        assert problem["status"] == 415 and problem["title"] == "Unsupported Media Type"
        assert problem["detail"] == (
            f"A body in content coding {coding!r} cannot be read: send it uncompressed "
            "(no Content-Encoding, or identity)."
        )
    assert w.client.get("/v1/metrics/quality-failure-cost-multiple-copy").status_code == 404
    assert w.etag(path) == tag
    # identity is no coding at all.
    plain = {**w.auth(), "Content-Type": "application/json", "Content-Encoding": "Identity"}
    created = w.client.post("/v1/metrics", content=body, headers=plain)
    assert created.status_code == 201, created.text


def test_a_body_member_without_a_name_is_named_as_sent(writable: Writable) -> None:
    # {"": 1} names a member "", which is unknown; the problem said "body" (the whole body).
    w = writable
    answer = w.client.post("/v1/metrics", json=new_metric() | {"": 1}, headers=w.auth())
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {"in": "body", "name": "", "detail": "Unknown or server-owned field."}
    ]
    assert w.client.get("/v1/metrics/quality-failure-cost-multiple-copy").status_code == 404


def test_if_none_match_on_a_write_is_a_precondition_too(writable: Writable) -> None:
    # RFC 9110 13.1.2 and 13.2.2: a PATCH or DELETE whose If-None-Match names the record's
    # current tag, or is `*` (it exists), is a 412 and changes nothing. It was ignored, and the
    # write the client had made conditional went through.
    w = writable
    path = "/v1/metrics/car-t-dose-manufacturing-cost"
    tag = w.etag(path)
    for method, none_match in (
        ("PATCH", "*"),
        ("PATCH", tag),
        ("PATCH", f'"other", W/{tag}'),
        ("DELETE", "*"),
        ("DELETE", tag),
    ):
        headers = {**w.auth(), "If-Match": tag, "If-None-Match": none_match}
        answer = w.client.request(
            method, path, headers=headers, json={"name": "Renamed"} if method == "PATCH" else None
        )
        assert answer.status_code == 412, (method, none_match, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == (
            "The metric 'car-t-dose-manufacturing-cost' matches If-None-Match; nothing was changed."
        )
    assert w.etag(path) == tag
    assert w.client.get(path).json()["name"] == "CAR-T dose manufacturing cost via a CDMO"
    # A tag of another version is no obstacle.
    headers = {**w.auth(), "If-Match": tag, "If-None-Match": '"r0000"'}
    answer = w.client.patch(path, headers=headers, json={"name": "Renamed"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "Renamed"
