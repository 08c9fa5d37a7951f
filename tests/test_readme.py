"""The README's curl examples are what the API answers: each plain `curl -s` is replayed."""

import itertools
import re
import shlex

from fastapi.testclient import TestClient

from api import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def examples() -> list[tuple[str, dict[str, str], str]]:
    """(path, headers, expected output) of each replayable example."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL):
        for command, output in re.findall(r"^\$ (curl .*)\n((?:(?!\$ ).*\n)*)", block, re.M):
            if "|" in command or " -X " in command or "'2026-" in command or "as_of" in command:
                continue  # piped, writing, or tied to one moment: illustrative, not replayed
            words = shlex.split(command)
            headers = dict(
                header.split(": ", 1) for flag, header in itertools.pairwise(words) if flag == "-H"
            )
            url = next(word for word in words if word.startswith("127.0.0.1:8000"))
            found.append((url.removeprefix("127.0.0.1:8000"), headers, output.rstrip("\n")))
    return found


def test_there_are_examples_to_replay() -> None:
    assert len(examples()) >= 18


def test_every_plain_example_matches_the_api(client: TestClient) -> None:
    for path, headers, expected in examples():
        actual = client.get(path, headers=headers).text.rstrip("\n")
        assert actual == expected, f"README example for {path} is out of date"
