"""FDB and neighbour tables: diff what should be against what was programmed.

Dumping a table through netlink costs about 0.2 ms per entry in pyroute2; with
thousands of remote endpoints a dump per apply would make every endpoint change take
seconds. So each table's last programmed content is remembered (`Programmed`) and
an apply only sends the difference; the kernel is dumped again when nothing is
remembered (first apply after a start, a recreated device) or when the memory is
older than `RECHECK_SECONDS`, which is the periodic pass that catches drift made
behind the agent's back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from socket import AF_INET

from netagent.kernel.pyroute import IPRoute
from netagent.ledger.changes import Change

NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RECHECK_SECONDS = 30.0


@dataclass
class Programmed:
    """What one table holds, as last written; `None` means "unknown: dump it"."""

    entries: dict[str, str] | None = None
    at: float = field(default=0.0)

    def known(self, now: float) -> dict[str, str] | None:
        return self.entries if now - self.at < RECHECK_SECONDS else None

    def remember(self, entries: dict[str, str], now: float, dumped: bool) -> None:
        self.entries = dict(entries)
        if dumped:
            self.at = now


def dump_neighbours(sb: IPRoute, index: int, state: int, flags: int = 0) -> dict[str, str]:
    """IP -> MAC of the IPv4 neighbours on link `index` carrying `state` (and `flags`)."""
    out: dict[str, str] = {}
    for msg in sb.neigh("dump", ifindex=index, family=AF_INET):
        if msg["ifindex"] != index or not msg["state"] & state:
            continue
        if flags and not msg["flags"] & flags:
            continue
        if msg.get("NDA_LLADDR"):
            out[msg.get("NDA_DST")] = msg.get("NDA_LLADDR")
    return out


def dump_fdb(sb: IPRoute, index: int) -> dict[str, str]:
    """MAC -> VTEP of the permanent 'self' FDB entries with a remote dst on the device."""
    out: dict[str, str] = {}
    for msg in sb.fdb("dump", ifindex=index):
        if msg["ifindex"] != index or not msg["flags"] & NTF_SELF:
            continue
        dst, mac = msg.get("NDA_DST"), msg.get("NDA_LLADDR")
        if dst and mac and mac != "00:00:00:00:00:00" and msg["state"] & NUD_PERMANENT:
            out[mac] = dst
    return out


def sync_neighbours(
    sb: IPRoute,
    index: int,
    label: str,
    want: dict[str, str],
    memory: Programmed,
    *,
    state: int = NUD_PERMANENT,
    flags: int = 0,
    why: str = "peer",
) -> list[Change]:
    """Make the neighbours of link `index` (with `state`/`flags`) equal `want`."""
    now = time.monotonic()
    have = memory.known(now)
    dumped = have is None
    if have is None:
        have = dump_neighbours(sb, index, state, flags)
    changes: list[Change] = []
    for ip, mac in have.items():
        if want.get(ip) != mac:
            sb.neigh("del", ifindex=index, dst=ip, lladdr=mac)
            changes.append(Change("remove", f"neigh {ip} lladdr {mac} on {label}", f"not a {why}"))
    for ip, mac in want.items():
        if have.get(ip) != mac:
            sb.neigh("replace", ifindex=index, dst=ip, lladdr=mac, state=state, flags=flags)
            changes.append(Change("add", f"neigh {ip} lladdr {mac} on {label}", f"new {why}"))
    memory.remember(want, now, dumped)
    return changes


def sync_fdb(
    sb: IPRoute, index: int, label: str, want: dict[str, str], memory: Programmed
) -> list[Change]:
    """Make the permanent MAC -> VTEP entries of VXLAN device `index` equal `want`."""
    now = time.monotonic()
    have = memory.known(now)
    dumped = have is None
    if have is None:
        have = dump_fdb(sb, index)
    changes: list[Change] = []
    for mac, dst in have.items():
        if want.get(mac) != dst:
            sb.fdb("del", ifindex=index, lladdr=mac, dst=dst)
            changes.append(Change("remove", f"fdb {mac} dst {dst} on {label}", "not a peer"))
    for mac, dst in want.items():
        if have.get(mac) != dst:
            sb.fdb("add", ifindex=index, lladdr=mac, dst=dst, state=NUD_PERMANENT)
            why = "new peer" if mac not in have else f"vtep {have[mac]}"
            changes.append(Change("add", f"fdb {mac} dst {dst} on {label}", why))
    memory.remember(want, now, dumped)
    return changes
