"""The placement text a service spec carries: constraint and preference grammar.

`--constraint node.role==manager` and `--placement-pref spread=node.labels.rack` are
parsed here, when a spec is validated (the objects' pydantic validators call
`check_constraint` / `check_preference`), so a bad one is refused with one line naming
it before anything is stored. Matching a parsed `Constraint` against a node is pure;
the scheduler and global mode use it through orchestrator.placement.

Swarm's grammar, the subset vxswarm nodes can answer: `KEY==VALUE` or `KEY!=VALUE`
with KEY one of `node.id`, `node.hostname`, `node.role`, `node.ip` (an address or
a CIDR) or `node.labels.<label>`. Several constraints are ANDed. Values compare
case-insensitively, as swarmkit's `strings.EqualFold` does; a label the node lacks
fails `==` and passes `!=`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.cluster.objects import Node

EQ = "=="
NE = "!="
LABEL_PREFIX = "node.labels."
KEYS = ("node.id", "node.hostname", "node.role", "node.ip")
ROLES = ("manager", "worker")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
EXPECTED = "expected KEY==VALUE or KEY!=VALUE"


class ConstraintError(ValueError):
    """A constraint that does not parse; the message names it and what was expected."""

    def __init__(self, expr: object, why: str):
        super().__init__(f"invalid constraint {expr!r}: {why}")
        self.why = why


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str  # EQ or NE
    value: str

    def matches(self, node: Node) -> bool:
        """Does `node` satisfy this constraint?"""
        equal = self._equal(node)
        return equal if self.op == EQ else not equal

    def _equal(self, node: Node) -> bool:
        if self.key == "node.ip":
            # A CIDR value matches every address in it; a bare address is a /32.
            return node.addr in IPv4Network(self.value, strict=False)
        if self.key.startswith(LABEL_PREFIX):
            have = node.labels.get(self.key.removeprefix(LABEL_PREFIX))
            return have is not None and have.casefold() == self.value.casefold()
        have = {"node.id": node.id, "node.hostname": node.hostname, "node.role": str(node.role)}
        return have[self.key].casefold() == self.value.casefold()

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse(expr: str) -> Constraint:
    """One constraint; ConstraintError naming `expr` and what was expected."""

    def bad(why: str) -> ConstraintError:
        return ConstraintError(expr, why)

    if not isinstance(expr, str):
        raise bad(EXPECTED)
    # The first operator wins, as in swarmkit ("a==b!=c" is key a, value "b!=c").
    found = [(expr.find(op), op) for op in (EQ, NE) if op in expr]
    if not found:
        raise bad(EXPECTED)
    at, op = min(found)
    key, value = expr[:at].strip(), expr[at + len(op) :].strip()
    if not key or not _KEY_RE.match(key):
        raise bad(f"missing or malformed key: {EXPECTED}")
    if not value:
        raise bad(f"missing value: {EXPECTED}")
    if key.startswith(LABEL_PREFIX):
        if key == LABEL_PREFIX:
            raise bad("node.labels. needs a label name (node.labels.<label>)")
    elif key not in KEYS:
        raise bad(f"unknown key {key!r}: expected one of {', '.join(KEYS)} or node.labels.<label>")
    if key == "node.role" and value.lower() not in ROLES:
        raise bad(f"unknown role {value!r}: expected manager or worker")
    if key == "node.ip":
        try:
            IPv4Network(value, strict=False)
        except ValueError:
            raise bad(f"{value!r} is not an IPv4 address or CIDR") from None
    return Constraint(key, op, value)


def check_constraint(expr: str) -> str:
    """`expr` normalised if it parses (a pydantic validator for spec fields).

    Raises a plain ValueError with only the reason: the spec's error line already
    names the field and the bad value."""
    try:
        return str(parse(expr))
    except ConstraintError as e:
        raise ValueError(e.why) from None


SPREAD = "spread="
PREFERENCE_EXPECTED = "expected spread=node.labels.<key>"


def check_preference(pref: str) -> str:
    """A preference as written, or ValueError naming it (run at spec validation)."""
    strategy, sep, descriptor = pref.partition("=")
    if not sep or strategy != "spread":
        raise ValueError(f"invalid placement preference {pref!r}: {PREFERENCE_EXPECTED}")
    key = descriptor.removeprefix(LABEL_PREFIX)
    if not descriptor.startswith(LABEL_PREFIX) or not key:
        raise ValueError(f"invalid placement preference {pref!r}: {PREFERENCE_EXPECTED}")
    return pref
