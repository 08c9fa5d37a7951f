"""Writes survive a crash: the server SIGKILLed during writes loses no acknowledged write and
leaves none half-written (a short run of bench/crashloop.py; the 50-cycle figures are in
docs/faults.md)."""

import pytest
from sqlalchemy import text

from api.db import make_engine
from bench import crashloop
from tests.conftest import DatabaseFactory


def test_killed_server_keeps_every_acknowledged_write(databases: DatabaseFactory) -> None:
    lines: list[str] = []
    summary = crashloop.run(databases.new_url(), cycles=5, seed=2026, log=lines.append)
    report = "\n".join(lines + summary.lines())
    assert summary.lost == [], report
    assert summary.half_written == [], report
    assert summary.other == [], report
    assert summary.cycles == 5
    assert summary.acknowledged_posts > 0 and summary.acknowledged_patches > 0, report
    assert summary.kills_during_writes > 0, report
    assert summary.in_flight == summary.in_flight_applied + summary.in_flight_absent, report


def test_the_loop_notices_a_write_changed_behind_its_back(databases: DatabaseFactory) -> None:
    if databases.backend != "sqlite":
        pytest.skip("the checks are the same on both backends; once is enough")
    loop = crashloop.Loop(databases.new_url(), writers=2, seed=7, log=lambda _line: None)
    for number in range(10):
        loop.cycle(number)
        acknowledged = [write for write in loop.unchecked if write.outcome == "acknowledged"]
        if acknowledged:
            break
    engine = make_engine(loop.url)
    with engine.begin() as connection:
        connection.execute(
            # The name, and the JSON kept with the row (`document`), as a write would leave them.
            text(
                "UPDATE metric SET name = 'tampered', document = replace(document,"
                ' \'"name":"\' || name || \'"\', \'"name":"tampered"\') WHERE id = :id'
            ),
            {"id": acknowledged[0].record_id},
        )
    engine.dispose()
    loop.cycle(number + 1)
    loop.server_log.unlink()
    assert any(acknowledged[0].record_id in problem for problem in loop.summary.lost)
    assert any(acknowledged[0].record_id in problem for problem in loop.summary.half_written)
