"""A source's verbatim text as HTML blocks, with spans (figures' sentences, entities) marked.

The text is never altered: each line becomes a block (a heading, a list item or a paragraph,
judged from its shape), and each marked span is wrapped where it lies. Spans nest (a sentence
inside a paragraph an entity spans); one that would cross another's boundary is left unmarked.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

_BULLET = re.compile(r"^\s*[•\-\*]\s+")
_NUMBERED_HEADING = re.compile(r"^\d+\.\s+\S")
_HEADING_MAX = 110
_TITLE = re.compile(r"^[A-Za-z][A-Za-z &()\-]+$")  # words alone: a title


@dataclass
class Span:
    """A marked range of the text: `open` and `close` are the HTML around it."""

    start: int
    end: int
    open: str
    close: str
    inner: Callable[[], str] = field(default=lambda: "")  # appended inside, before `close`


@dataclass
class Block:
    """One line of the text as a block element."""

    tag: str  # h2 | h3 | li | p
    html: Markup


def _line_kind(index: int, line: str) -> str:
    stripped = line.strip()
    if _BULLET.match(line):
        return "li"
    if len(stripped) >= _HEADING_MAX:
        return "p"
    if index == 0 or _NUMBERED_HEADING.match(stripped) or _TITLE.match(stripped):
        return "h2"
    if stripped.endswith("?"):
        return "h3"  # the FAQ's questions
    return "p"


def _render(text: str, offset: int, spans: list[Span]) -> str:
    """`text` (starting at `offset` in the source) with the spans inside it wrapped."""
    inside = sorted(
        (s for s in spans if offset <= s.start and s.end <= offset + len(text)),
        key=lambda s: (s.start, -s.end),
    )
    out: list[str] = []
    stack: list[Span] = []
    position = offset

    def emit_until(end: int) -> None:
        nonlocal position
        while stack and stack[-1].end <= end:
            closing = stack.pop()
            out.append(escape(text[position - offset : closing.end - offset]))
            position = closing.end
            out.append(closing.inner() + closing.close)
        out.append(escape(text[position - offset : end - offset]))
        position = end

    for span in inside:
        emit_until(span.start)
        if stack and span.end > stack[-1].end:
            continue  # it would cross the enclosing span's end: leave it unmarked
        out.append(span.open)
        stack.append(span)
    emit_until(offset + len(text))
    return "".join(out)


def marked(line: str, offset: int, spans: list[Span]) -> Markup:
    """One line (at `offset` in the source) with the spans inside it wrapped."""
    return Markup(_render(line, offset, spans))


def blocks(text: str, spans: list[Span]) -> list[Block]:
    """The text's non-empty lines as blocks, with `spans` marked."""
    result: list[Block] = []
    offset = 0
    for index, line in enumerate(text.split("\n")):
        start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        kind = _line_kind(index, line)
        if kind == "li":
            bullet = _BULLET.match(line)
            assert bullet is not None
            start += bullet.end()
            line = line[bullet.end() :]
        else:
            lead = len(line) - len(line.lstrip())
            start += lead
            line = line.strip()
        result.append(Block(kind, Markup(_render(line, start, spans))))
    return result


def paragraph_of(text: str, start: int, end: int) -> tuple[str, int]:
    """The line holding the span `start`..`end`, and the line's own offset in the text."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    last = len(text) if last == -1 else last
    line = text[first:last]
    bullet = _BULLET.match(line)
    skip = bullet.end() if bullet else len(line) - len(line.lstrip())
    return line[skip:].rstrip(), first + skip
