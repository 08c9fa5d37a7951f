"""Helpers the tests share: keys, a writable app over a seeded database, a valid new metric."""

from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth import service as auth_service
from api.db import writer

SOURCE = "coreychem-future-of-cdmos-2026"
TEXT_PATH = "/v1/sources/coreychem-future-of-cdmos-2026/text"


@dataclass
class Writable:
    client: TestClient
    engine: Engine
    keys: dict[str, str]

    def auth(self, name: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def etag(self, path: str) -> str:
        return self.client.get(path).headers["etag"]


def make_keys(engine: Engine) -> dict[str, str]:
    with Session(writer(engine)) as session, session.begin():
        keys = {
            "alice": auth_service.create_key(session, name="alice", scope="write"),
            "root": auth_service.create_key(session, name="root", scope="admin"),
            "gone": auth_service.create_key(session, name="gone", scope="admin"),
        }
        auth_service.revoke_key(session, name="gone")
    return keys


def new_metric(**changes: object) -> dict[str, object]:
    quote = "Cost of quality failures (batch rejection, deviation investigations) for personalized therapies is 3.5x higher per patient dose than for traditional biologics."
    body: dict[str, object] = {
        "id": "quality-failure-cost-multiple-copy",
        "category": "regulatory",
        "name": "Quality failure cost multiple (copy)",
        "description": "A second record of the 3.5x figure, made by a test.",
        "value": 3.5,
        "value_low": 3.5,
        "value_high": 3.5,
        "qualifier": "eq",
        "unit": "ratio",
        "measure": "multiple",
        "direction": None,
        "year": None,
        "forecast": False,
        "base_year": None,
        "geography": None,
        "subjects": ["quality"],
        "cited_as": None,
        "baseline_id": None,
        "source_id": SOURCE,
        "evidence": {"quote": quote, "start": 4915, "end": 4915 + len(quote)},
    }
    body.update(changes)
    return body
