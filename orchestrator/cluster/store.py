"""The cluster store: every cluster object, as pydantic JSON in etcd, mirrored in memory.

One code path for one manager or seven (Swarm runs Raft even for one): objects live in
etcd under `<prefix><kind>/<id>` (kinds: cluster, node, network, service, task, secret,
config), and
every manager keeps a mirror of them, filled by one range read and kept current by a
watch, so reads cost no round trip and a manager that is not the leader still answers
them from its own member.

Writes are the leader's. A `tx()` collects its puts and deletes (reads inside it see
them) and commits them as ONE etcd transaction, guarded by the fence the leader's
election gives (orchestrator.etcd.election): the transaction also compares the leader
key's create revision, so a manager that lost its leadership, even one that does not know
it yet, cannot write. A write outside `tx()` is a transaction of its own. Nothing is
applied to the mirror until etcd acknowledged it, and an acknowledged write is on a
quorum of members' disks.

`revision` is etcd's revision of the last object change this mirror holds: it grows with
every write, so the long-poll can tell an agent "something changed".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel

from netagent.contract.errors import InvalidArgument, Unavailable
from orchestrator.etcd.client import (
    EtcdClient,
    EtcdError,
    Event,
    Watch,
    op_delete,
    op_put,
    prefix_end,
)
from orchestrator.etcd.election import NotLeader

log = logging.getLogger(__name__)

KINDS = frozenset({"cluster", "node", "network", "service", "task", "secret", "config"})

M = TypeVar("M", bound=BaseModel)

#: The compares that make a write the current leader's (raises Unavailable when this
#: manager is not the leader).
Fence = Callable[[], list[dict[str, Any]]]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidArgument(
            f"unknown object kind {kind!r}: expected one of {', '.join(sorted(KINDS))}",
            obj=kind,
            op="store",
        )


class Store:
    """Objects by kind and id, with transactions and a write revision."""

    def __init__(self, client: EtcdClient, prefix: bytes, fence: Fence):
        self._client = client
        self._prefix = prefix
        self._fence = fence
        self.path = f"etcd {client.socket_path} {prefix.decode()}"
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        self._revision = 0
        #: The writes of the open transaction: (kind, id) -> JSON, or None to delete.
        self._pending: dict[tuple[str, str], str | None] | None = None
        self._depth = 0
        self._closed = threading.Event()
        self._watch: Watch | None = None
        self._watcher: threading.Thread | None = None

    @classmethod
    def open(cls, client: EtcdClient, prefix: bytes, fence: Fence) -> Store:
        """The store under `prefix`, loaded and kept current until `close()`."""
        store = cls(client, prefix, fence)
        store.reload()
        store._watcher = threading.Thread(target=store._follow, name="store-watch", daemon=True)
        store._watcher.start()
        return store

    def close(self) -> None:
        self._closed.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5)

    @property
    def revision(self) -> int:
        """etcd's revision of the last change this mirror holds."""
        return self._revision

    # the mirror -------------------------------------------------------------------

    def reload(self) -> None:
        """Read every object again (a quorum read): at start, and before a new leader's
        first write, so it decides on everything the swarm holds."""
        # Under the lock: a watch event applied meanwhile must not be overwritten by
        # this older read.
        with self._lock:
            kvs, revision = self._client.range(self._prefix, prefix_end(self._prefix))
            objects: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
            for kv in kvs:
                split = self._split(kv.key)
                if split is not None:
                    objects[split[0]][split[1]] = kv.value.decode()
            self._objects = objects
            self._revision = max(self._revision, revision)
        watch = self._watch
        if watch is not None:
            watch.close()  # the watcher starts again from the new revision

    def _split(self, key: bytes) -> tuple[str, str] | None:
        kind, _, obj_id = key[len(self._prefix) :].decode().partition("/")
        return (kind, obj_id) if kind in KINDS and obj_id else None

    def _follow(self) -> None:
        """Apply the changes etcd reports (another manager's writes, on a follower)."""
        backoff = 0.1
        while not self._closed.is_set():
            try:
                self._watch = self._client.watch(
                    self._prefix, prefix_end(self._prefix), self._revision + 1
                )
                if self._closed.is_set():  # closed while the watch was being made
                    self._watch.close()
                for _revision, events in self._watch:
                    self._apply(events)
                    backoff = 0.1
            except EtcdError as err:
                if self._closed.is_set():
                    return
                log.warning("store watch interrupted, reading the store again: %s", err)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                try:
                    self.reload()
                except EtcdError:
                    continue
            except Exception:  # never let the mirror stop following
                log.exception("store watch failed")
                self._closed.wait(1.0)

    def _apply(self, events: list[Event]) -> None:
        with self._lock:
            # At or below the revision before this batch: this manager's own write, or
            # one a reload already read. (The events of one transaction share their
            # revision, and etcd sends them in one batch: compare with the floor, not
            # with a revision raised by the batch's first event.)
            floor = self._revision
            for event in events:
                if event.kv.mod_revision <= floor:
                    continue
                split = self._split(event.kv.key)
                if split is None:
                    continue
                kind, obj_id = split
                if event.deleted:
                    self._objects[kind].pop(obj_id, None)
                else:
                    self._objects[kind][obj_id] = event.kv.value.decode()
                self._revision = event.kv.mod_revision

    # reads --------------------------------------------------------------------------

    def _raw(self, kind: str, obj_id: str) -> str | None:
        if self._pending is not None and (kind, obj_id) in self._pending:
            return self._pending[(kind, obj_id)]
        return self._objects[kind].get(obj_id)

    def get(self, kind: str, id: str, model: type[M]) -> M | None:
        """The object, or None when there is none with that id."""
        _check_kind(kind)
        with self._lock:
            raw = self._raw(kind, id)
        return None if raw is None else model.model_validate_json(raw)

    def list(self, kind: str, model: type[M]) -> list[M]:
        """Every object of a kind, ordered by id."""
        raws = self.raw_objects(kind)
        return [model.model_validate_json(raws[i]) for i in sorted(raws)]

    def raw_objects(self, kind: str) -> dict[str, str]:
        """Every object of a kind as its stored JSON, by id (a copy): for readers that
        keep what they decoded and decode again only what changed."""
        _check_kind(kind)
        with self._lock:
            raws = dict(self._objects[kind])
            for (k, obj_id), raw in (self._pending or {}).items():
                if k != kind:
                    continue
                if raw is None:
                    raws.pop(obj_id, None)
                else:
                    raws[obj_id] = raw
        return raws

    # writes -------------------------------------------------------------------------

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
            self._pending = {}
            self._depth = 1
            try:
                yield self
                self._commit(self._pending)
            finally:
                self._pending = None
                self._depth = 0

    def _key(self, kind: str, obj_id: str) -> bytes:
        return self._prefix + f"{kind}/{obj_id}".encode()

    def _commit(self, writes: dict[tuple[str, str], str | None]) -> None:
        if not writes:
            return
        if self._closed.is_set():
            raise Unavailable("the store is closed", obj=self.path, op="store")
        compares = self._fence()
        ops = [
            op_delete(self._key(kind, obj_id))
            if raw is None
            else op_put(self._key(kind, obj_id), raw.encode())
            for (kind, obj_id), raw in writes.items()
        ]
        result = self._client.txn(compares, ops)
        if not result.succeeded:
            raise NotLeader(
                "this manager is no longer the leader: the write was not made", op="store"
            )
        for (kind, obj_id), raw in writes.items():
            if raw is None:
                self._objects[kind].pop(obj_id, None)
            else:
                self._objects[kind][obj_id] = raw
        self._revision = max(self._revision, result.revision)

    def put(self, kind: str, obj: BaseModel) -> None:
        """Insert or replace `obj` (it must have an `id`)."""
        _check_kind(kind)
        obj_id = getattr(obj, "id", None)
        if not isinstance(obj_id, str) or not obj_id:
            raise InvalidArgument(f"cannot store a {kind} without an id", obj=kind, op="put")
        data = obj.model_dump_json()
        with self.tx():
            assert self._pending is not None
            self._pending[(kind, obj_id)] = data

    def delete(self, kind: str, id: str) -> bool:
        """Remove one object; True if it existed. Deleting nothing is not a write."""
        _check_kind(kind)
        with self.tx():
            if self._raw(kind, id) is None:
                return False
            assert self._pending is not None
            self._pending[(kind, id)] = None
            return True
