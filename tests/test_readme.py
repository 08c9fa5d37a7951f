"""The README's curl examples are what the API answers: each `curl` that reads (or is refused
without a key) is replayed, with its pipe through `grep`, `head`, `cut` or `tr` applied to what
curl would print."""

import http
import itertools
import re
import shlex
from dataclasses import dataclass

from fastapi.testclient import TestClient

from api import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# Pipes the replay applies; an example piped through anything else (jq, od, unzip) is not
# replayed.
FILTERS = ("grep", "head", "cut", "tr")


@dataclass
class Example:
    command: str
    method: str
    path: str
    headers: dict[str, str]
    printed: str  # "body", "headers" (-sD - -o /dev/null) or "both" (-si)
    pipes: list[list[str]]
    expected: str


def examples() -> list[Example]:
    """Each replayable example."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL):
        for command, output in re.findall(r"^\$ (curl .*)\n((?:(?!\$ ).*\n)*)", block, re.M):
            if "'2026-" in command or "as_of" in command or "$" in command or ";" in command:
                continue  # tied to one moment, or to a key or file of the reader's: illustrative
            lexer = shlex.shlex(command, posix=True, punctuation_chars="|")
            lexer.whitespace_split = True
            curl, *pipes = (
                list(words)
                for is_pipe, words in itertools.groupby(lexer, key=lambda word: word == "|")
                if not is_pipe
            )
            if " -d" in command or any(pipe[0] not in FILTERS for pipe in pipes):
                continue  # a write, or piped through a tool the replay does not imitate
            headers = dict(
                header.split(": ", 1) for flag, header in itertools.pairwise(curl) if flag == "-H"
            )
            if "--compressed" not in curl:
                headers.setdefault("Accept-Encoding", "identity")  # as curl sends none
            method = curl[curl.index("-X") + 1] if "-X" in curl else "GET"
            url = next(word for word in curl if word.startswith("127.0.0.1:8000"))
            printed = "headers" if "-sD" in curl else "both" if "-si" in curl else "body"
            path = url.removeprefix("127.0.0.1:8000")
            found.append(
                Example(command, method, path, headers, printed, pipes, output.rstrip("\n"))
            )
    return found


def _printed(example: Example, client: TestClient) -> str:
    """What curl prints for the example's request, before its pipes."""
    response = client.request(example.method, example.path, headers=example.headers)
    status = http.HTTPStatus(response.status_code)
    head = [f"HTTP/1.1 {status.value} {status.phrase}"] + [
        f"{name.decode()}: {value.decode()}" for name, value in response.headers.raw
    ]
    if example.printed == "headers":
        return "\n".join(head) + "\n"
    if example.printed == "both":
        return "\n".join(head) + "\n\n" + response.text
    return response.text


def _piped(text: str, pipe: list[str]) -> str:
    """`text` through one of FILTERS, as the README's shell runs it."""
    tool, *arguments = pipe
    lines = text.splitlines()
    if tool == "grep":
        flags, pattern = [a for a in arguments if a.startswith("-")], arguments[-1]
        found = re.compile(pattern, re.IGNORECASE if any("i" in f for f in flags) else 0)
        return "".join(line + "\n" for line in lines if found.search(line))
    if tool == "head":
        if arguments[0] == "-c":
            return text.encode()[: int(arguments[1])].decode()
        return "".join(line + "\n" for line in lines[: int(arguments[0].lstrip("-"))])
    if tool == "tr":
        assert arguments == ["-d", "\\r"], pipe
        return text.replace("\r", "")
    assert tool == "cut", pipe
    if arguments[0].startswith("-c"):
        end = int(arguments[0].split("-")[-1])
        return "".join(line[:end] + "\n" for line in lines)
    separator, fields = arguments[0].removeprefix("-d"), arguments[1].removeprefix("-f")
    wanted: list[int] = []
    for part in fields.split(","):
        low, _, high = part.partition("-")
        wanted.extend(range(int(low), int(high or low) + 1))
    return "".join(
        separator.join(cells[n - 1] for n in wanted if n <= len(cells)) + "\n"
        for cells in (line.split(separator) for line in lines)
    )


def test_there_are_examples_to_replay() -> None:
    every = examples()
    assert len(every) >= 30
    assert sum(bool(example.pipes) for example in every) >= 9


def test_every_example_matches_the_api(client: TestClient) -> None:
    stale = []
    for example in examples():
        printed = _printed(example, client)
        for pipe in example.pipes:
            printed = _piped(printed, pipe)
        if printed.rstrip("\n") != example.expected:
            stale.append(f"$ {example.command}\n{printed}(README: {example.expected!r})")
    assert not stale, "README examples out of date:\n" + "\n".join(stale)
