"""The manager's store: every cluster object, as pydantic JSON in one SQLite file.

Owns `<state_dir>/manager/store.db` (WAL mode) and nothing else. Objects are kept
per kind + id (kinds: cluster, node, network, service, task); every write bumps a
monotonic `revision` kept in the same database, so the revision and the objects
can never disagree, and the long-poll can tell an agent "something changed".

Each write is committed before the call returns (a write outside `tx()` is its own
transaction), so a SIGKILLed manager loses nothing it acknowledged. WAL with
`synchronous=NORMAL` is durable against a process crash; only an OS crash may lose
the last transactions, which a single-manager lab accepts for speed.

Why SQLite and not a dict pickled to disk: transactions (a tick's batch of
decisions lands whole or not at all) and crash safety come for free.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from netagent.contract.errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)

KINDS = frozenset({"cluster", "node", "network", "service", "task"})

M = TypeVar("M", bound=BaseModel)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
"""


def store_path(state_dir: Path) -> Path:
    """Where the manager of a node keeps its store."""
    return Path(state_dir) / "manager" / "store.db"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidArgument(
            f"unknown object kind {kind!r}: expected one of {', '.join(sorted(KINDS))}",
            obj=kind,
            op="store",
        )


class Store:
    """Objects by kind and id, with transactions and a write revision."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._revision = self._read_revision()

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the store file at `path`."""
        path = Path(path)
        # The store holds the join secrets and the CA key: 0700 directory, 0600 file,
        # created so (SQLite gives its -wal and -shm files the database's mode).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is
        # left in an implicit transaction that a crash could lose.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        log.debug("store opened at %s", path)
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    @property
    def revision(self) -> int:
        """Grows by one with every put or delete."""
        return self._revision

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Unavailable("the store is closed", obj=str(self.path), op="store")
        return self._conn

    def _read_revision(self) -> int:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    @contextmanager
    def tx(self) -> Iterator[Store]:
        """A transaction: every write inside lands together or not at all. Nests."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            db = self._db()
            # IMMEDIATE takes the write lock up front: a second process cannot
            # interleave writes between our reads and writes.
            db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                db.execute("ROLLBACK")
                self._revision = self._read_revision()
                raise
            else:
                db.execute("COMMIT")
            finally:
                self._depth = 0

    def _bump(self) -> None:
        self._db().execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        self._revision += 1

    def get(self, kind: str, id: str, model: type[M]) -> M | None:
        """The object, or None when there is none with that id."""
        _check_kind(kind)
        with self._lock:
            row = (
                self._db()
                .execute("SELECT data FROM objects WHERE kind = ? AND id = ?", (kind, id))
                .fetchone()
            )
        return None if row is None else model.model_validate_json(row[0])

    def list(self, kind: str, model: type[M]) -> list[M]:
        """Every object of a kind, ordered by id."""
        _check_kind(kind)
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT data FROM objects WHERE kind = ? ORDER BY id", (kind,))
                .fetchall()
            )
        return [model.model_validate_json(r[0]) for r in rows]

    def put(self, kind: str, obj: BaseModel) -> None:
        """Insert or replace `obj` (it must have an `id`)."""
        _check_kind(kind)
        obj_id = getattr(obj, "id", None)
        if not isinstance(obj_id, str) or not obj_id:
            raise InvalidArgument(f"cannot store a {kind} without an id", obj=kind, op="put")
        data = obj.model_dump_json()
        with self.tx():
            self._db().execute(
                "INSERT OR REPLACE INTO objects (kind, id, data) VALUES (?, ?, ?)",
                (kind, obj_id, data),
            )
            self._bump()

    def delete(self, kind: str, id: str) -> bool:
        """Remove one object; True if it existed. Deleting nothing is not a write."""
        _check_kind(kind)
        with self.tx():
            cur = self._db().execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, id))
            if cur.rowcount:
                self._bump()
            return bool(cur.rowcount)
