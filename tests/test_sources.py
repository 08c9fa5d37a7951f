"""Sources and their verbatim text."""

from fastapi.testclient import TestClient

from tests.test_dataset import ARTICLE, SOURCE_FILE, SOURCE_ID


def test_sources_collection(client: TestClient) -> None:
    body = client.get("/v1/sources").json()
    assert body == {
        "items": [
            {
                "id": SOURCE_ID,
                "title": "Future of CDMOs in Personalized Cancer Medicine Manufacturing",
                "publisher": "CoreyChem",
                "author": "CoreyChem Editorial Team",
                "published_on": "2026-06-01",
                "kind": "article",
                "url": None,
                "metric_count": 42,
                "text_url": f"/v1/sources/{SOURCE_ID}/text",
            }
        ],
        "total": 1,
        "limit": 50,
        "offset": 0,
        "next": None,
    }
    assert client.get(f"/v1/sources/{SOURCE_ID}").json() == body["items"][0]


def test_text_is_served_byte_for_byte(client: TestClient) -> None:
    response = client.get(f"/v1/sources/{SOURCE_ID}/text")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.content == SOURCE_FILE.read_bytes()


def test_every_evidence_offset_indexes_the_served_text(client: TestClient) -> None:
    text = client.get(f"/v1/sources/{SOURCE_ID}/text").text
    assert text == ARTICLE
    for metric in client.get("/v1/metrics", params={"limit": 500}).json()["items"]:
        evidence = metric["evidence"]
        assert text[evidence["start"] : evidence["end"]] == evidence["quote"]


def test_unknown_source_is_404_for_item_and_text(client: TestClient) -> None:
    for path in ("/v1/sources/nope", "/v1/sources/nope/text"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["detail"] == "There is no source 'nope'."


def test_text_refuses_an_accept_it_cannot_meet(client: TestClient) -> None:
    response = client.get(f"/v1/sources/{SOURCE_ID}/text", headers={"Accept": "application/json"})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"
