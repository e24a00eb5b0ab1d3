"""Where a history lives, an SQLite file or a PostgreSQL database, and one small connection interface over both.

The store above this module writes one SQL text for both: ``?`` placeholders (turned into
``%s`` for psycopg), plain types, ``INSERT`` then the new id. What truly differs between the two
(how a write transaction waits for another, the auto-increment column, the float type,
integrity checks) is answered here, so the schema and its migrations are one list for both.

Why no SQLAlchemy and Alembic: the schema is seven plain tables that both databases read with
the same SQL; the stdlib's sqlite3 and psycopg 3 are both DB-API drivers, and a versioned list of
migration functions (``schema.py``) gives what Alembic would (create on first use, upgrade in
place, one path for both) without two more dependencies and their version pins for every user,
most of whom only ever open the SQLite file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0
#: Seconds to wait for a PostgreSQL server to accept a connection.
CONNECT_TIMEOUT_S = 10
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Any number: every pytest-mathperf process takes this advisory lock to create or migrate the schema.
SCHEMA_LOCK_KEY = 0x6D61_7468_7065_7266  # "mathperf"


class HistoryError(Exception):
    """The history cannot be used; the message is one line naming the history and the problem."""


@dataclass(frozen=True)
class HistoryLocation:
    """An SQLite file (``path``) or a PostgreSQL database (``url``, never with a password in it)."""

    path: Path | None = None
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return self.url if self.url is not None else str(self.path)


def parse_location(value: str | Path | HistoryLocation, base: Path | None = None) -> HistoryLocation:
    """A ``--history`` value as a location: a ``postgresql://`` URL, or a file path (relative to ``base``).

    A URL that carries a password is refused: it would stay in shell histories, CI logs, process
    lists and the report. The password belongs in ``PGPASSWORD`` or ``~/.pgpass``, where libpq
    finds it by itself.
    """
    if isinstance(value, HistoryLocation):
        return value
    if isinstance(value, Path):
        return HistoryLocation(path=base / value if base is not None else value)
    text = str(value)
    if "://" not in text:
        path = Path(text)
        return HistoryLocation(path=base / path if base is not None else path)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port that is not a number raises here, not deep in libpq
    except ValueError as error:
        scheme_end, at = text.find("://") + 3, text.rfind("@")
        user, colon, _ = text[scheme_end:at].partition(":") if at > scheme_end else ("", "", "")
        if colon:  # never echo a password, nor Python's message, which may quote part of it
            shown = f"{text[:scheme_end]}{user}:…{text[at:]}"
            raise HistoryError(f"{shown}: not a valid URL; give a postgresql://user@host:port/database URL") from None
        raise HistoryError(f"{text}: not a valid URL ({error}); give a postgresql://user@host:port/database URL") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise HistoryError(
            f"{parts.scheme}://…: not a history location; give a file path or a postgresql://user@host/database URL"
        )
    if parts.password is not None or "password" in parse_qs(parts.query):
        port = f":{parts.port}" if parts.port else ""
        shown = f"{parts.scheme}://{parts.username or ''}@{parts.hostname or ''}{port}{parts.path}"
        raise HistoryError(
            f"{shown}: the URL holds a password, which would be written to logs and process lists; "
            "remove it from the URL and set PGPASSWORD or a ~/.pgpass line instead"
        )
    return HistoryLocation(url=text)


class Database:
    """One open connection to a history store, with the few operations the store needs."""

    location: HistoryLocation
    #: The column type of an auto-increment integer primary key.
    ID_COLUMN: str
    #: The column type of a double-precision float.
    FLOAT_COLUMN: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run one ``INSERT`` into a table with an ``id`` column and return the new row's id."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, rolled back on any exception (KeyboardInterrupt included)."""
        raise NotImplementedError
        yield

    def lock_schema(self) -> None:
        """Inside a transaction: wait until no other process creates or migrates the schema."""

    def tables(self) -> set[str]:
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def storage_problems(self, quick: bool) -> list[str]:
        """What the database engine itself finds wrong with the stored data (empty when sound)."""
        return []

    def close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn the driver's errors into one-line HistoryErrors that name the history."""
        raise NotImplementedError
        yield


class SQLiteDatabase(Database):
    ID_COLUMN = "INTEGER PRIMARY KEY"
    FLOAT_COLUMN = "REAL"

    def __init__(self, location: HistoryLocation, *, create: bool) -> None:
        assert location.path is not None
        self.location = location
        path = location.path
        if not path.exists():
            if not create:
                raise FileNotFoundError(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{path}: cannot create its folder: {exc.strerror or exc}") from exc
        elif path.is_dir():
            raise HistoryError(f"{path} is a folder, not a pytest-mathperf history file")
        try:
            if create or _writable(path):
                self.connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self.connection = _connect_read_only(path)
        except sqlite3.Error as exc:
            raise HistoryError(f"{path} cannot be opened: {exc}") from exc
        try:
            with self.errors():
                self.connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                # In WAL mode, NORMAL still survives a killed process intact (only a power cut may
                # lose the last commits, never corrupt the file) and spares a disk flush per case.
                self.connection.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self.connection.close()
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.connection.execute(sql, tuple(params)).lastrowid or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock at once, so a second writer waits (busy timeout) instead of
        # failing at its first write with "database is locked".
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.connection.execute("COMMIT")
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise

    def enable_wal(self) -> None:
        """On an empty database only: WAL lets readers (a report) run while a run writes.

        Two processes creating one file at once: while the first creates the tables, the second
        one's switch fails at once with "database is locked" (SQLite's busy timeout does not
        cover it), so it waits here; the mode is the file's, so by then the switch is a no-op.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def tables(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.execute(f"PRAGMA table_info({table})")}

    def storage_problems(self, quick: bool) -> list[str]:
        rows = self.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check")
        return [] if [row[0] for row in rows] == ["ok"] else [f"sqlite integrity check: {row[0]}" for row in rows]

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        path = self.location.path
        try:
            yield
        except HistoryError:
            raise
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "locked" in message or "busy" in message:
                raise HistoryError(f"{path} is locked by another process: {message}") from exc
            if "unable to open" in message:
                raise HistoryError(f"{path} cannot be opened: {message} (a folder it cannot write beside?)") from exc
            if "readonly" in message or "read-only" in message:
                raise HistoryError(f"{path} cannot be written: {message}") from exc
            if "disk" in message and "full" in message:
                raise HistoryError(f"{path} cannot be written: {message}") from exc
            raise HistoryError(f"{path} is corrupt or unreadable: {message}") from exc
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not a database" in message:
                raise HistoryError(f"{path} is corrupt or not an SQLite file: {message}") from exc
            raise HistoryError(f"{path} is corrupt: {message}") from exc


def _writable(path: Path) -> bool:
    """Whether SQLite may write beside ``path`` (its -wal and -shm files), as on a read-only mount it may not."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Read a history that cannot be written (a read-only mount, an archive): ``mode=ro``, and where a WAL
    file's -shm cannot be made there, ``immutable`` (nothing can change a file that nobody may write)."""
    uri = path.resolve().as_uri()
    connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return connection
    except sqlite3.OperationalError:
        connection.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


class PostgresDatabase(Database):
    ID_COLUMN = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    FLOAT_COLUMN = "DOUBLE PRECISION"

    def __init__(self, location: HistoryLocation) -> None:
        assert location.url is not None
        self.location = location
        try:
            import psycopg
        except ImportError:
            raise HistoryError(
                f"{location.url}: a PostgreSQL history needs psycopg; install it with "
                "pip install 'pytest-mathperf[postgres]'"
            ) from None
        self._psycopg = psycopg
        with self.errors():
            # libpq reads the password from PGPASSWORD or ~/.pgpass; the URL never holds one.
            # client_encoding: text comes back as str even from a database created as SQL_ASCII.
            self.connection = psycopg.connect(
                location.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="pytest-mathperf", client_encoding="UTF8",
            )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.execute(_placeholders(sql), _without_nul(params))
        return [_with_nul(row) for row in cursor.fetchall()] if cursor.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(_placeholders(sql), [_without_nul(row) for row in rows])

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        row = self.connection.execute(_placeholders(sql) + " RETURNING id", _without_nul(params)).fetchone()
        assert row is not None
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))

    def tables(self) -> set[str]:
        return {
            row[0]
            for row in self.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        }

    def columns(self, table: str) -> set[str]:
        return {
            row[0]
            for row in self.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
                (table,),
            )
        }

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        url = self.location.url
        try:
            yield
        except HistoryError:
            raise
        except self._psycopg.Error as exc:
            message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            if isinstance(exc, self._psycopg.OperationalError):
                raise HistoryError(f"{url} cannot be reached or written: {message}") from exc
            raise HistoryError(f"{url}: {message}") from exc


#: Marks a text stored escaped because it holds NUL, which PostgreSQL's text type cannot hold; a
#: Unicode noncharacter, so no text a model or a user writes starts with it by chance.
NUL_ESCAPED = "\ufdd0nul:"


def _without_nul(params: Sequence[Any]) -> tuple[Any, ...]:
    """Parameters for PostgreSQL: a text holding NUL (or starting with the marker) becomes the marker and its JSON."""
    return tuple(
        NUL_ESCAPED + json.dumps(value) if isinstance(value, str) and ("\x00" in value or value.startswith(NUL_ESCAPED)) else value
        for value in params
    )


def _with_nul(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row as it was written: escaped texts back to what they were."""
    return tuple(
        json.loads(value[len(NUL_ESCAPED) :]) if isinstance(value, str) and value.startswith(NUL_ESCAPED) else value
        for value in row
    )


def open_database(location: HistoryLocation, *, create: bool) -> Database | None:
    """A connection to the store; None for a missing SQLite file when ``create`` is False."""
    if location.is_postgres:
        return PostgresDatabase(location)
    try:
        return SQLiteDatabase(location, create=create)
    except FileNotFoundError:
        return None


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")
