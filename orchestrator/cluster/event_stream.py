"""The stream of `vxswarm events`: one etcd watch, replaying recent history, then live.

Why a watch and not snapshots: etcd numbers every write with a revision and keeps the
history of each key until it is compacted, so one watch from an old revision replays
every change since (with the value it replaced: `prev_kv`) and then goes on with new
ones, none missed or doubled between the two. Any manager serves it from its own
member, the leader or not.

The watch covers every key, not only the objects: so every revision up to `head` (the
store's revision when the stream began) is seen, which tells when the replay has
caught up, even if the last object change was long before `head`.

How far back `--since` reaches: etcd keeps what its auto-compaction leaves (the
project runs it with `--auto-compaction-mode=revision --auto-compaction-retention=1000`:
every five minutes, revisions older than the last 1000 go). Asked for older ones, the
watch says which is the oldest kept; the replay starts there and the stream says so
in a warning. Docker's daemon keeps its last 256 events in memory; this keeps at least
1000 changes and survives a manager's restart, and any manager answers.

Times: a live event's time is when this manager saw it (milliseconds after the write,
what docker's swarm events carry for a removal too). A replayed one's is the object's
own record of the change (orchestrator.cluster.events), or, where it keeps none (a
removal), the time of the change before it in the replay; replayed times never go
backwards, so `--since` and `--until` select a stretch of the stream.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.cluster.events import Change, Message, derive
from orchestrator.etcd.client import Compacted, EtcdClient, EtcdError, Event, Watch

log = logging.getLogger(__name__)
#: Every key: etcd reads a range end of "\0" as "to the end".
ALL_KEYS = b"\0"


@dataclass(frozen=True)
class Notice:
    """A line for the user's stderr, not an event."""

    text: str


class EventSource:
    """The events of the objects under `prefix`, from `since_ns` (None: from now)."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        node_name: Callable[[str], str | None],
        clock: Callable[[], int] = time.time_ns,
    ):
        self._client, self._prefix, self._clock = client, prefix, clock
        self._node_name = node_name
        self._names: dict[str, str] = {}  # node id -> hostname, from node events seen
        self._watch: Watch | None = None
        self._closed = False

    def close(self) -> None:
        """End `messages()` (from any thread)."""
        self._closed = True
        if self._watch is not None:
            self._watch.close()

    def messages(
        self, since_ns: int | None = None, until_ns: int | None = None
    ) -> Iterator[Message | Notice]:
        _, head = self._client.range(self._prefix)  # one absent key: the revision now
        replaying = since_ns is not None
        if until_ns is not None and until_ns <= self._clock() and not replaying:
            return
        start = 1 if replaying else head + 1
        pending: list[Change] = []
        while not self._closed:
            try:
                self._watch = self._client.watch(ALL_KEYS, ALL_KEYS, start, prev_kv=True)
                if self._closed:
                    self._watch.close()
                for _revision, events in self._watch:
                    for event in events:
                        start = event.kv.mod_revision + 1
                        change = self._change(event)
                        if event.kv.mod_revision <= head:
                            if change is not None:
                                pending.append(change)
                            continue
                        if replaying:  # the first live one: the replay is over
                            yield from replayed(pending, since_ns or 0, until_ns, self._clock())
                            pending, replaying = [], False
                        now = self._clock()
                        if until_ns is not None and now > until_ns:
                            return
                        if change is not None:
                            yield change.message(now)
                    if replaying and start > head:
                        yield from replayed(pending, since_ns or 0, until_ns, self._clock())
                        pending, replaying = [], False
                        if until_ns is not None and until_ns <= self._clock():
                            return
            except Compacted as err:
                yield Notice(
                    f"events older than store revision {err.revision} are no longer kept "
                    "(etcd keeps the last 1000 revisions): the replay starts there"
                )
                start = err.revision
            except EtcdError:
                if self._closed:
                    return
                raise

    def _change(self, event: Event) -> Change | None:
        key = event.kv.key
        if not key.startswith(self._prefix):
            return None
        kind, _, obj_id = key[len(self._prefix) :].decode().partition("/")
        if not obj_id:
            return None
        new = None if event.deleted else _load(event.kv.value)
        old = _load(event.prev.value) if event.prev is not None else None
        if old is None and new is not None and event.kv.create_revision != event.kv.mod_revision:
            old = {}  # an update whose previous value was compacted away
        if kind == "node":
            for obj in (old, new):
                if obj and obj.get("hostname"):
                    self._names[obj["id"]] = obj["hostname"]
        return derive(kind, old, new, self._hostname)

    def _hostname(self, node_id: str) -> str:
        return self._names.get(node_id) or self._node_name(node_id) or node_id


def replayed(
    changes: list[Change], since_ns: int, until_ns: int | None, now_ns: int
) -> Iterator[Message]:
    """The replayed changes with their times (see the module doc), within the window."""
    known = [c.time for c in changes if c.time is not None]
    last = _ns(known[0]) if known else now_ns  # before the first known: that one
    for change in changes:
        if change.time is not None:
            last = max(last, _ns(change.time))
        if last >= since_ns and (until_ns is None or last <= until_ns):
            yield change.message(last)


def _load(value: bytes) -> dict | None:
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _ns(seconds: float) -> int:
    # A float of seconds holds microseconds; more digits would be noise.
    return round(seconds * 1_000_000) * 1000
