"""Reading JSON that leaves nothing to guess: an object naming a member twice, an integer too
long to read, a number too small to be anything but zero. Python's reader takes each silently
(the last member wins; 4,300 digits is a ValueError like any syntax error; 1e-400 is 0.0), as
other readers would not agree to; the API's write bodies and the import's files are refused for
them, naming the place."""

import json
from typing import Any

# Python reads no longer integer (sys.get_int_max_str_digits); no field takes one near it.
MAX_INTEGER_DIGITS = 4300


def read(content: bytes | str) -> tuple[Any, list[tuple[str, str]]]:
    """The document, and what in it is ambiguous: (place, what) pairs, in the document's order
    (`evidence.start`, `items[2].name`; `body` for a number, whose place the reader does not
    tell).
    Raises ValueError (or RecursionError) when `content` is not JSON."""
    repeated: dict[int, tuple[dict[str, Any], list[str]]] = {}
    numbers: list[tuple[str, str]] = []

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs):  # linear: 60,000 members once took 40 s (list.count)
            seen: set[str] = set()
            names: list[str] = []
            for name, _value in pairs:
                if name in seen:
                    names.append(name)
                seen.add(name)
            # The object is kept, so that no other takes its id while the body is read.
            repeated[id(found)] = (found, names)
        return found

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
            digits = len(text.lstrip("-"))
            numbers.append(("body", f"holds an integer of {digits:,} digits, too long to read"))
            return 0
        return int(text)

    def real(text: str) -> float:
        value = float(text)
        if value == 0 and text.lower().partition("e")[0].strip("-+0.") != "":
            numbers.append(("body", f"holds {text}, too small to be told from 0"))
        return value

    document = json.loads(content, object_pairs_hook=members, parse_int=integer, parse_float=real)
    places = [
        (place, "appears more than once in one object") for place in _located(document, repeated)
    ]
    return document, places + numbers


def _located(document: Any, repeated: dict[int, tuple[dict[str, Any], list[str]]]) -> list[str]:
    """The repeated names of `repeated`'s objects, each with its place in `document`
    (`evidence.start`, `items[2].name`), in the document's order; those of an object the
    document no longer holds (a repeated member's earlier value), by name alone."""
    if not repeated:
        return []
    found: list[str] = []
    left = dict(repeated)
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:  # not recursive: a body may nest as deep as the parser allows
        path, node = stack.pop()
        if isinstance(node, dict):
            _node, names = left.pop(id(node), (node, []))
            found += [f"{path}.{name}" if path else name for name in names]
            stack += [(f"{path}.{k}" if path else k, v) for k, v in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node)))]
    return list(dict.fromkeys(found + [name for _node, names in left.values() for name in names]))
