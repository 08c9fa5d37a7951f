"""The one text form search compares in: Unicode NFKC.

Text reaches the index and the query in any of the forms Unicode gives one word: a decomposed
`é` (e and a combining accent) or the composed one, `x²` or `x2`, `ﬁle` or `file`, the micro
sign `µ` or the Greek `μ`, `①` or `1`, fullwidth letters or plain ones. The two databases' word
splitters treat these differently (FTS5's unicode61 keeps `²` and `①` inside a word and folds
`µ` to `μ`; PostgreSQL's splitter drops them and keeps `µ`), so each search document and each
`q` is first brought to NFKC (Unicode's compatibility composition): on PostgreSQL by
`cdmo_search_vector` itself (its `normalize(..., NFKC)`), on SQLite by the SQL function below,
which every connection of the app registers (api.db), and by `api.search.parse` for `q`.
"""

import unicodedata

SQL_FUNCTION = "cdmo_nfkc"


def nfkc(text: str | None) -> str | None:
    """`text` in NFKC (ASCII is already: returned as is, at the cost of one scan)."""
    if text is None or text.isascii():
        return text
    return unicodedata.normalize("NFKC", text)


def register(dbapi_connection: object) -> None:
    """Make `cdmo_nfkc(text)` callable in SQL on an SQLite connection."""
    dbapi_connection.create_function(  # type: ignore[attr-defined]
        SQL_FUNCTION, 1, nfkc, deterministic=True
    )
