"""Where payments are kept between web requests: the :class:`Store` protocol the
:class:`~direct_otp.Driver` needs, and :class:`SqliteStore`, one SQLite file (stdlib
``sqlite3``) shared by the threads and processes of one machine.

A store keeps rows (``key`` primary, ``order_id``, ``attempt``, ``revision``,
``in_flight_since``, the ``record`` text verbatim) and does exactly five things; the driver
decides everything else (docs/concurrency.md): insert (never overwrite), replace by
compare-and-swap on the revision, load, the latest attempt of an order, and the keys in
flight since before a time. Any exception it raises reaches the driver as a transient
store failure (the driver retries, then reports ``store``).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, List, Optional, Protocol, Union

from ._time import from_ms, to_ms, utc_now
from .errors import DirectOtpError

__all__ = ["Row", "Store", "SqliteStore"]


@dataclass(frozen=True)
class Row:
    """One payment as a store keeps it. ``record`` is the text to store verbatim."""

    key: str
    order_id: str
    attempt: int
    revision: int
    in_flight_since: Optional[datetime]
    record: str

    def __repr__(self) -> str:
        return (
            f"Row(key={self.key!r}, order_id={self.order_id!r}, attempt={self.attempt}, "
            f"revision={self.revision}, in_flight_since={self.in_flight_since!r})"
        )


class Store(Protocol):
    """What the driver needs from a database. Each method is one statement (or one
    transaction); none decides anything."""

    def load(self, key: str) -> Optional[str]:
        """The stored record text of ``key``, or None."""
        ...

    def latest_for_order(self, order_id: str) -> Optional[str]:
        """The record of ``order_id``'s row with the highest attempt, or None."""
        ...

    def insert(self, row: Row) -> bool:
        """Inserts ``row``; False (and nothing written) if its key exists. Never overwrites."""
        ...

    def replace(self, expected: int, row: Row) -> bool:
        """Replaces the row of ``row.key`` if its stored revision is ``expected``; False (and
        nothing written) otherwise."""
        ...

    def list_in_flight(self, before: datetime, limit: int) -> List[str]:
        """Keys whose ``in_flight_since`` is before ``before``, oldest first, at most
        ``limit``."""
        ...


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SqliteStore:
    """The payments in one SQLite file: WAL mode (readers never wait for the writer),
    a busy timeout (writers of several processes take turns), each write one ``BEGIN
    IMMEDIATE`` transaction, a replace a compare-and-swap on the revision, an insert that
    never overwrites. Threads each get their own connection; processes open the file
    themselves (pass the path, not the store, to a ``multiprocessing`` worker).

    The table is the Rust ``SqliteStore``'s (``direct_otp_records``): a Rust service and a
    Python one can share the file.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        table: str = "direct_otp_records",
        busy_timeout: timedelta = timedelta(seconds=5),
    ) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise DirectOtpError(
                {"code": "store_config"},
                "store_config: the table name must be a plain SQL identifier",
            )
        self._path = os.fspath(path)
        self._table = table
        self._timeout = busy_timeout.total_seconds()
        self._local = threading.local()
        self._all: List[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate()

    # ----- connections ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: Optional[sqlite3.Connection] = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            return conn
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        local.conn = conn
        local.pid = os.getpid()
        with self._lock:
            self._all.append(conn)
        return conn

    def _migrate(self) -> None:
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise DirectOtpError(
                {"code": "store_config"}, "store_config: the file cannot be in WAL mode"
            )
        t = self._table
        self._write(
            f"""CREATE TABLE IF NOT EXISTS {t} (
                key             TEXT PRIMARY KEY NOT NULL,
                revision        INTEGER NOT NULL,
                in_flight_since INTEGER,
                state           TEXT NOT NULL,
                updated_at      INTEGER NOT NULL,
                order_id        TEXT,
                attempt         INTEGER
            )""",
            (),
        )
        self._write(
            f"CREATE INDEX IF NOT EXISTS {t}_in_flight ON {t} (in_flight_since) "
            "WHERE in_flight_since IS NOT NULL",
            (),
        )
        self._write(f"CREATE INDEX IF NOT EXISTS {t}_order ON {t} (order_id, attempt)", ())

    def _write(self, sql: str, params: Any) -> int:
        """One statement in a ``BEGIN IMMEDIATE`` transaction; the rows it changed."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            changed = conn.execute(sql, params).rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return changed

    def close(self) -> None:
        """Closes every connection this store opened (call when no thread uses it)."""
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r}, table={self._table!r})"

    # ----- Store -----------------------------------------------------------------------

    def load(self, key: str) -> Optional[str]:
        row = self._conn().execute(
            f"SELECT state FROM {self._table} WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def latest_for_order(self, order_id: str) -> Optional[str]:
        row = self._conn().execute(
            f"SELECT state FROM {self._table} WHERE order_id = ? "
            "ORDER BY attempt DESC, key DESC LIMIT 1",
            (order_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert(self, row: Row) -> bool:
        try:
            self._write(
                f"INSERT INTO {self._table} "
                "(key, revision, in_flight_since, state, updated_at, order_id, attempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.key, row.revision, _ms_or_none(row.in_flight_since), row.record,
                 to_ms(utc_now()), row.order_id, row.attempt),
            )
        except sqlite3.IntegrityError:
            return False  # the key exists: never overwrite
        return True

    def replace(self, expected: int, row: Row) -> bool:
        # order_id and attempt never change over a record's life: written by the insert.
        changed = self._write(
            f"UPDATE {self._table} SET revision = ?, in_flight_since = ?, state = ?, "
            "updated_at = ? WHERE key = ? AND revision = ?",
            (row.revision, _ms_or_none(row.in_flight_since), row.record, to_ms(utc_now()),
             row.key, expected),
        )
        return changed == 1

    def list_in_flight(self, before: datetime, limit: int) -> List[str]:
        rows = self._conn().execute(
            f"SELECT key FROM {self._table} WHERE in_flight_since IS NOT NULL "
            "AND in_flight_since < ? ORDER BY in_flight_since, key LIMIT ?",
            (to_ms(before), limit),
        ).fetchall()
        return [str(r[0]) for r in rows]

    # ----- for tests and tools ----------------------------------------------------------

    def rows(self) -> List[Row]:
        """Every row (for inspection)."""
        out = self._conn().execute(
            f"SELECT key, order_id, attempt, revision, in_flight_since, state "
            f"FROM {self._table} ORDER BY key"
        ).fetchall()
        return [
            Row(
                key=str(k),
                order_id=str(o),
                attempt=int(a or 0),
                revision=int(r),
                in_flight_since=None if f is None else from_ms(int(f)),
                record=str(s),
            )
            for (k, o, a, r, f, s) in out
        ]


def _ms_or_none(when: Optional[datetime]) -> Optional[int]:
    return None if when is None else to_ms(when)
