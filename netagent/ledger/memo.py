"""Work done per item of a desired state, remembered per item object.

A node's desired state lists thousands of items (peers, services with their
backends). Most of them are the same from one apply to the next, and when the state
came as a patch (netagent.contract.patch) they are the very same objects: the models are
frozen, so an object seen before needs no second look. Telling them apart by
identity costs a dictionary lookup; by value (hashing models, addresses) it costs
microseconds per item, tens of milliseconds per apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")


class IdentityMemo(Generic[T, V]):
    """`compute(item)` for the items of one place's tuple (a network's peers, say),
    reusing the values of the items that were in the tuple given the time before.

    Only the last tuple's items are kept: memory stays that of one state, and as a
    kept item stays alive, its id() cannot be reused by another object."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[T, V]] = {}

    def values(self, items: Iterable[T], compute: Callable[[T], V]) -> list[V]:
        """In the order of `items`; raises what `compute` raises (nothing remembered)."""
        last, now, out = self._last, {}, []
        for item in items:
            hit = last.get(id(item))
            if hit is None or hit[0] is not item:
                hit = (item, compute(item))
            now[id(item)] = hit
            out.append(hit[1])
        self._last = now
        return out
