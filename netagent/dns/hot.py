"""Answers already built, replayed: the resolver's UDP fast path.

A local answer is a pure function of the scope (the networks the asking task is
on), the tables, the query's bytes after its id, and, for a name with several
addresses, the round-robin turn. So the first time a query is answered, its
response minus the id is kept (for a rotating name, one per turn) under the
query minus its id; the next identical query costs one dict lookup and a
sendto instead of a parse, a lookup and a build. Clients that randomise the
case of names (0x20) simply make more keys.

The cache belongs to one `records.Tables`: the resolver drops it the moment the
tables are swapped, so an answer never outlives the cluster state it came
from. Hits are counted on the entries and folded into the resolver's counters
when it reads them or drops the cache, all on the serving thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from netagent.dns import wire

#: Entries per scope before the scope's cache starts over (random names and 0x20
#: case make keys without bound; the hot set of a real workload is small).
MAX_ENTRIES = 4096


class Hot:
    """One query's answer(s), minus the 2-byte id, and how often it was replayed."""

    __slots__ = ("tails", "key", "qtype", "rcode", "hits")

    def __init__(self, tails: tuple[bytes, ...], key: bytes, qtype: int, rcode: int):
        #: one response per round-robin turn (one for a stable answer)
        self.tails = tails
        #: the name's rotation key (records.View's key), shared with the slow path
        self.key = key
        self.qtype = qtype
        self.rcode = rcode
        self.hits = 0

    def reply(self, qid: bytes, rotation: dict[bytes, int]) -> bytes:
        tails = self.tails
        if len(tails) == 1:
            return qid + tails[0]
        turn = rotation.get(self.key, 0)
        rotation[self.key] = turn + 1
        return qid + tails[turn % len(tails)]


class HotAnswers:
    """Per scope (a tuple of network ids): query bytes after the id -> Hot."""

    def __init__(self, tables: object):
        #: the records.Tables these answers were built from
        self.tables = tables
        self._scopes: dict[tuple[str, ...], dict[bytes, Hot]] = {}

    def scope(self, network_ids: tuple[str, ...]) -> dict[bytes, Hot]:
        found = self._scopes.get(network_ids)
        if found is None:
            found = self._scopes[network_ids] = {}
        return found

    def learn(
        self,
        scope: dict[bytes, Hot],
        data: bytes,
        q: wire.Query,
        count: int,
        build: Callable[[int], bytes],
        fold: Callable[[Hot], None],
    ) -> None:
        """Keep the answer to `data`: `build(turn)` makes the response for each of the
        name's `count` round-robin turns (1 for a stable answer)."""
        if len(scope) >= MAX_ENTRIES:
            for hot in scope.values():
                fold(hot)
            scope.clear()
        tails = tuple(build(turn)[2:] for turn in range(max(count, 1)))
        first = tails[0]
        scope[data[2:]] = Hot(tails, q.key, wire.qtype_of(data), wire.rcode_of(b"\0\0" + first))

    def entries(self) -> Iterator[Hot]:
        for scope in self._scopes.values():
            yield from scope.values()
