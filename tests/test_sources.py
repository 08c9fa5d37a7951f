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


def test_a_source_read_at_a_moment_links_its_text_at_that_moment(client: TestClient) -> None:
    """The evidence of metrics read `as_of` indexes the text as it stood then: the source's
    `text_url` read at a moment keeps that moment."""
    moment = "2030-01-01T00:00:00+01:00"
    item = client.get(f"/v1/sources/{SOURCE_ID}", params={"as_of": moment}).json()
    assert (
        item["text_url"] == f"/v1/sources/{SOURCE_ID}/text?as_of=2030-01-01T00%3A00%3A00%2B01%3A00"
    )
    page = client.get("/v1/sources", params={"as_of": moment}).json()
    assert page["items"] == [item]
    text = client.get(item["text_url"])
    assert text.status_code == 200 and text.headers["Dataset-Version"] == "1"
    assert text.text == client.get(f"/v1/sources/{SOURCE_ID}/text").text
    before = client.get(f"/v1/sources/{SOURCE_ID}/text", params={"as_of": "2001-01-01T00:00:00Z"})
    assert before.status_code == 404
