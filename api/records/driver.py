"""Kept read statements run through the database driver.

A cold page runs one SELECT that is built once and kept (api.metrics.service). Executing it
through the ORM session cost about as much CPU as the database's own work for a page of 50:
the session's and the connection's execution layers, the statement's cache key and the result
object, on every request. A `Prepared` statement is compiled once for its dialect; each run
hands its SQL and parameters to the driver's cursor on the session's connection (so it reads
in the session's transaction, at the version the session learned when it began) and applies
only the result conversions its column types need (on SQLite, integers to booleans).

A session reading at a version (`as_of`) has its statements rewritten to read the history
(api.records.asof) on their way through SQLAlchemy: those run as any statement does.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Select
from sqlmodel import Session

from api.records import asof


class Prepared:
    """`statement` compiled for `dialect`, with the values of its bound parameters; a run may
    give other values for some of them by name."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("a statement with expanding parameters (IN lists) is not prepared")
        self.statement = statement
        self.sql = str(compiled)
        self.names: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        self.converters: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.converters[name] = processor
        self.values = self._converted(
            {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            }
        )
        self.dialect = dialect
        # The columns' result conversions, found at the first run: some depend on the type
        # the driver reports (PostgreSQL's numeric types).
        self.results: list[tuple[int, Callable[[Any], Any]]] | None = None

    def _results(self, description: Sequence[Sequence[Any]]) -> list[tuple[int, Any]]:
        results = []
        for index, column in enumerate(self.statement.selected_columns):
            kind = column.type.dialect_impl(self.dialect)
            processor = kind.result_processor(self.dialect, description[index][1])
            if processor is not None:
                results.append((index, processor))
        return results

    def _converted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: self.converters[name](value) if name in self.converters else value
            for name, value in values.items()
        }

    def _parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        values = {**self.values, **self._converted(given)} if given else self.values
        return values if self.names is None else tuple(values[name] for name in self.names)

    def rows(self, session: Session, **given: Any) -> list[Sequence[Any]]:
        """The statement's rows in `session`'s transaction."""
        if asof.read_version(session) is not None:
            return list(session.execute(self.statement, given).all())
        connection = session.connection().connection
        cursor = connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, self._parameters(given))
            rows: list[Any] = cursor.fetchall()
            if self.results is None:
                self.results = self._results(cursor.description)
        finally:
            cursor.close()
        results = self.results
        if not results:
            return rows
        converted: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for index, processor in results:
                values[index] = processor(values[index])
            converted.append(values)
        return converted
