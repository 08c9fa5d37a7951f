"""The one text form search compares in: Unicode NFKC, with two letters folded.

Text reaches the index and the query in any of the forms Unicode gives one word: a decomposed
`é` (e and a combining accent) or the composed one, `x²` or `x2`, `ﬁle` or `file`, the micro
sign `µ` or the Greek `μ`, `①` or `1`, fullwidth letters or plain ones. The two databases' word
splitters treat these differently (FTS5's unicode61 keeps `²` and `①` inside a word and folds
`µ` to `μ`; PostgreSQL's splitter drops them and keeps `µ`), so each search document and each
`q` is first brought to NFKC (Unicode's compatibility composition).

Two letters are then folded, as the databases' lower-casing would not fold them alike: the
Greek final sigma (U+03C2) becomes the sigma (U+03C3) (FTS5 folds it so, PostgreSQL keeps it,
and Python's `lower()` writes it at the end of every word it lowers), and the Turkish dotted
capital `İ` becomes `I` (FTS5 leaves it as it is, PostgreSQL lowers it to `i`, Python to `i`
and a combining dot, which splits the word).

Documents are normalised on PostgreSQL by `cdmo_search_vector` itself (migration 0016), on
SQLite by the SQL function `cdmo_nfkc` below, which every connection of the app registers
(api.db); the words of `q` by `api.search.parse` (`query_text`).
"""

import unicodedata

SQL_FUNCTION = "cdmo_nfkc"
# The final sigma to the sigma, the dotted capital I to I.
_FOLDED = str.maketrans({"\u03c2": "\u03c3", "\u0130": "I"})


def nfkc(text: str | None) -> str | None:
    """`text` in NFKC, the two letters folded (ASCII is already: returned as is, at the cost
    of one scan)."""
    if text is None or text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_FOLDED)


def query_text(text: str) -> str:
    """Text of `q`, normalised as documents are and lower-cased (the final sigma that
    `lower()` writes folded again)."""
    lowered = (nfkc(text) or "").lower()
    return lowered if lowered.isascii() else lowered.translate(_FOLDED)


def register(dbapi_connection: object) -> None:
    """Make `cdmo_nfkc(text)` callable in SQL on an SQLite connection."""
    dbapi_connection.create_function(  # type: ignore[attr-defined]
        SQL_FUNCTION, 1, nfkc, deterministic=True
    )
