"""Writes racing each other, 16 at a time on a real server: never a 5xx, and always one winner."""

import concurrent.futures
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import serving
from tests.helpers import make_keys, new_metric

RACERS = 16


@pytest.fixture
def server(fresh_seeded_engine: Engine) -> Iterator[tuple[str, dict[str, str]]]:
    keys = make_keys(fresh_seeded_engine)
    with serving(fresh_seeded_engine, WRITE_RATE_LIMIT="10000") as (_server, url):
        yield url, {"Authorization": f"Bearer {keys['alice']}"}


def race(work: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=RACERS) as pool:
        answers = list(pool.map(work, range(RACERS)))
    assert not [a for a in answers if a.status_code >= 500], [a.text for a in answers]
    return answers


def test_creates_of_one_id_give_one_201_and_409s(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    answers = race(lambda _n: httpx.post(f"{url}/v1/metrics", json=new_metric(), headers=auth))
    assert sorted(a.status_code for a in answers) == [201] + [409] * (RACERS - 1)
    assert httpx.get(f"{url}/v1/metrics").json()["total"] == 43


def test_posts_with_one_idempotency_key_give_one_201_and_replays(
    server: tuple[str, dict[str, str]],
) -> None:
    url, auth = server
    headers = {**auth, "Idempotency-Key": "one-key-for-all"}
    answers = race(lambda _n: httpx.post(f"{url}/v1/metrics", json=new_metric(), headers=headers))
    assert {a.status_code for a in answers} == {201}
    replayed = [a.headers.get("idempotent-replayed") for a in answers]
    assert replayed.count("true") == RACERS - 1 and replayed.count(None) == 1
    assert len({a.content for a in answers}) == 1
    assert len({a.headers["etag"] for a in answers}) == 1


def test_a_delete_racing_a_patch_that_points_at_it(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    created = httpx.post(f"{url}/v1/metrics", json=new_metric(), headers=auth)
    assert created.status_code == 201
    target = f"{url}/v1/metrics/{new_metric()['id']}"
    pointer = f"{url}/v1/metrics/quality-failure-cost-multiple"
    target_tag = created.headers["etag"]
    pointer_tag = httpx.get(pointer).headers["etag"]

    def work(n: int) -> httpx.Response:
        if n % 2:
            return httpx.delete(target, headers={**auth, "If-Match": target_tag})
        patch = {"baseline_id": new_metric()["id"]}
        return httpx.patch(pointer, json=patch, headers={**auth, "If-Match": pointer_tag})

    answers = race(work)
    # The loser of the reference race gets 409 (a DELETE of a record now referred to) or 422
    # (a PATCH naming a record now gone); later DELETEs of the deleted record get 404.
    assert {a.status_code for a in answers} <= {200, 204, 404, 409, 412, 422}
    deleted = httpx.get(target).status_code == 404
    baseline = httpx.get(pointer).json()["baseline_id"]
    # Whichever came first, the other could not break the reference.
    assert (deleted and baseline is None) or (not deleted and baseline == new_metric()["id"])
    assert [a.status_code for a in answers].count(200) <= 1
    assert [a.status_code for a in answers].count(204) <= 1


def test_patches_with_one_if_match_let_exactly_one_through(
    server: tuple[str, dict[str, str]],
) -> None:
    url, auth = server
    path = f"{url}/v1/metrics/viral-vector-lead-time"
    headers = {**auth, "If-Match": httpx.get(path).headers["etag"]}
    answers = race(lambda n: httpx.patch(path, json={"name": f"Writer {n}"}, headers=headers))
    assert sorted(a.status_code for a in answers) == [200] + [412] * (RACERS - 1)
