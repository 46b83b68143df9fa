"""Leader election on etcd: a lease, a leader key, and a fence for the leader's writes.

The recipe of etcd's own `concurrency` package (and of Patroni, Kubernetes leases):
each candidate holds a lease it keeps alive; the leader is whoever created
`<prefix>leader` (a transaction that succeeds only while the key is absent), attached
to its lease. When the leader stops keeping its lease alive (its machine stopped, it
lost its member or quorum) etcd deletes the key at the lease's end and another candidate
creates it. Every write of the leader compares the key's create revision (`fence()`): a
deposed leader's writes fail even before it notices it was deposed.

Each candidate also keeps `<prefix>present/<name>` on its lease: a manager whose key is
there reaches a quorum of etcd members (Reachable); a missing key is Unreachable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from netagent.contract.errors import Unavailable
from orchestrator.etcd.client import (
    EtcdClient,
    EtcdError,
    key_created_at,
    op_delete,
    op_put,
    op_range,
    prefix_end,
)

log = logging.getLogger(__name__)

#: Seconds a lease lasts without a keepalive. etcd's floor is 1.5 x its election
#: timeout (orchestrator.etcd.member: 1 s); the failover takes about this plus an etcd
#: election when the leader's member went with it.
LEASE_TTL = 2


class NotLeader(Unavailable):
    """A write reached a manager that is not (or no longer) the leader; nothing was written."""


#: How often the loop runs: keepalives, and a follower's look at the leader key.
PERIOD = 0.25


class Election:
    """Campaign as `name` under `prefix` until `stop()`; `on_change(leading)` on each turn."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        name: str,
        *,
        on_change: Callable[[bool], None] = lambda _leading: None,
        ttl: int = LEASE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self.prefix = prefix
        self.name = name
        self._on_change = on_change
        self._ttl = ttl
        self._clock = clock
        self.leader_key = prefix + b"leader"
        self.present_key = prefix + b"present/" + name.encode()
        self._lease = 0
        #: When the lease ends, as far as this manager knows (its clock).
        self._lease_end = 0.0
        self._fence_revision = 0
        #: The leader's name as last seen ("" when there was none).
        self.leader = ""
        self._hold_until = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def leading(self) -> bool:
        return self._fence_revision != 0

    @property
    def term(self) -> int:
        """The revision this candidate's leadership began at (0: it does not lead); the
        same after a step down and a re-adoption of the same key."""
        return self._fence_revision

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="election", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the leader key now rather than at the next period (a manager that
        just revoked a dead leader's lease campaigns at once)."""
        self._wake.set()

    def wait_leading(self, timeout: float) -> bool:
        """Until this candidate leads (True) or `timeout` passed (False)."""
        deadline = time.monotonic() + timeout
        while not self.leading and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.leading

    def fence(self) -> list[dict[str, Any]]:
        """The compares that make a transaction this leader's; Unavailable if not leading."""
        revision = self._fence_revision
        if not revision:
            raise NotLeader(f"{self.name} is not the leader: the write was not made", op="write")
        return [key_created_at(self.leader_key, revision)]

    # the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        next_keepalive = 0.0
        while not self._stop.is_set():
            try:
                if not self._lease:
                    self._new_lease()
                    next_keepalive = self._clock() + self._ttl / 4
                elif self._clock() >= next_keepalive:
                    self._keepalive()
                    next_keepalive = self._clock() + self._ttl / 4
                if self._lease:
                    self._look()
            except EtcdError as err:
                log.debug("election: %s", err)
            except Exception:  # never let the election stop
                log.exception("election loop failed")
            if self.leading and self._clock() >= self._lease_end:
                # Our lease may have ended (its end is reckoned from before each renewal
                # was sent: never later than etcd's): stop acting as the leader. A slow
                # etcd alone does not depose: nobody else can take over without it, and
                # the fence guards the store against a late write anyway.
                self._step_down("its lease could not be renewed")
            self._wake.wait(PERIOD)
            self._wake.clear()

    def _new_lease(self) -> None:
        sent = self._clock()
        lease = self._client.lease_grant(self._ttl)
        self._client.put(self.present_key, b"", lease=lease)
        self._lease, self._lease_end = lease, sent + self._ttl

    def _keepalive(self) -> None:
        sent = self._clock()
        left = self._client.lease_keepalive(self._lease)
        if left <= 0:
            self._lease = 0
            self._step_down("its lease expired")
            return
        self._lease_end = sent + left

    def _look(self) -> None:
        """Lead if nobody does; else note who does."""
        if self.leading:
            return
        if self._clock() < self._hold_until:
            current = self._client.get(self.leader_key)
            self.leader = current.value.decode() if current else ""
            return
        result = self._client.txn(
            [key_created_at(self.leader_key, 0)],
            [op_put(self.leader_key, self.name.encode(), self._lease)],
            [op_range(self.leader_key)],
        )
        if result.succeeded:
            with self._lock:
                self._fence_revision = result.revision
                self.leader = self.name
            log.info("%s is the leader (revision %d)", self.name, result.revision)
            self._on_change(True)
            return
        current = result.ranges[0][0] if result.ranges and result.ranges[0] else None
        self.leader = current.value.decode() if current else ""
        if current is not None and self.leader == self.name and current.lease == self._lease:
            # Still ours: this candidate stepped down when it could not renew its lease
            # (a lost quorum), but the lease outlived that and the key is on it.
            with self._lock:
                self._fence_revision = current.create_revision
            log.info("%s leads again (revision %d)", self.name, current.create_revision)
            self._on_change(True)
            return
        if current is not None and self.leader == self.name and current.lease != self._lease:
            # Our own key from before a restart, on a lease we no longer hold: clear it
            # rather than wait for it to expire.
            self._client.txn(
                [key_created_at(self.leader_key, current.create_revision)],
                [op_delete(self.leader_key)],
            )
            self._wake.set()

    def _step_down(self, why: str) -> None:
        with self._lock:
            if not self._fence_revision:
                return
            self._fence_revision = 0
            self.leader = ""
        (log.info if self._stop.is_set() else log.warning)(
            "%s is no longer the leader: %s", self.name, why
        )
        self._on_change(False)

    # leaving ----------------------------------------------------------------------

    def resign(self, hold: float = 0.0) -> None:
        """Give up the leadership now (and do not campaign for `hold` seconds), so
        another candidate takes over without waiting for a lease to end."""
        self._hold_until = self._clock() + hold
        was_leading = self.leading
        self._step_down("it resigned")
        if was_leading:
            try:
                self._client.delete(self.leader_key)
            except EtcdError as err:
                log.warning("could not clear the leader key: %s", err)

    def stop(self) -> None:
        """Resign, end the lease (its keys go with it) and stop campaigning."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._step_down("it stopped")
        if self._lease:
            try:
                self._client.lease_revoke(self._lease)
            except EtcdError as err:
                log.debug("could not revoke the election lease: %s", err)
            self._lease = 0

    # what the others are ------------------------------------------------------------

    def present(self) -> set[str]:
        """The candidates whose lease is alive (a serializable read: answers without
        quorum, from this member's copy)."""
        start = self.prefix + b"present/"
        kvs, _ = self._client.range(start, prefix_end(start), serializable=True, keys_only=True)
        return {kv.key[len(start) :].decode() for kv in kvs}

    def current_leader(self, *, serializable: bool = True) -> str:
        """The leader's name as this member sees it ("" for none)."""
        kvs, _ = self._client.range(self.leader_key, serializable=serializable)
        return kvs[0].value.decode() if kvs else ""
