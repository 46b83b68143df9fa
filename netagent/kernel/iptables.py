"""iptables rules in one network namespace (iptables-nft, run as a command).

Owns nothing by itself; callers pass full rule specs and record them, so that
cleanup deletes exactly the rule it added (`-D` with the same spec), never by
pattern. Every vxswarm rule carries `-m comment --comment "vxswarm: ..."` so a
user reading `iptables-save` sees who made it.

Rules are added with check-then-append (`-C` || `-A`), which makes `ensure_rule`
idempotent across daemon restarts. Commands run inside a named namespace with
`nsenter --net=/run/netns/<ns>`; `-w` waits for the xtables lock instead of
failing when another agent on the same box is editing its own namespace.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Sequence

from netagent.contract.errors import InvalidArgument, KernelError
from netagent.kernel.netns import run_tool

IPTABLES = shutil.which("iptables") or "/usr/sbin/iptables"
IPTABLES_SAVE = shutil.which("iptables-save") or "/usr/sbin/iptables-save"
COMMENT_PREFIX = "vxswarm: "
TABLES = ("filter", "nat", "mangle", "raw")


def comment(text: str) -> list[str]:
    """The comment match every vxswarm rule carries."""
    return ["-m", "comment", "--comment", COMMENT_PREFIX + text]


def _run(ns: str | None, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return run_tool(ns, [IPTABLES, "-w", *args], "iptables")


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise InvalidArgument(
            f"invalid iptables table {table!r}: expected one of {', '.join(TABLES)}",
            obj=table,
            op="iptables",
        )


def rule_exists(ns: str | None, table: str, chain: str, spec: Sequence[str]) -> bool:
    _check_table(table)
    return _run(ns, ["-t", table, "-C", chain, *spec]).returncode == 0


def ensure_rule(ns: str | None, table: str, chain: str, spec: Sequence[str]) -> bool:
    """Append the rule unless an identical one exists; True if added now."""
    if rule_exists(ns, table, chain, spec):
        return False
    res = _run(ns, ["-t", table, "-A", chain, *spec])
    if res.returncode != 0:
        raise KernelError(
            f"iptables -t {table} -A {chain} {' '.join(spec)}: {res.stderr.strip()}",
            obj=f"{table}/{chain}",
            op="iptables add",
            errno=errno.EINVAL,
        )
    return True


def delete_rule(ns: str | None, table: str, chain: str, spec: Sequence[str]) -> bool:
    """Delete every copy of exactly this rule; True if one was there."""
    found = False
    while rule_exists(ns, table, chain, spec):
        res = _run(ns, ["-t", table, "-D", chain, *spec])
        if res.returncode != 0:
            raise KernelError(
                f"iptables -t {table} -D {chain} {' '.join(spec)}: {res.stderr.strip()}",
                obj=f"{table}/{chain}",
                op="iptables delete",
                errno=errno.EINVAL,
            )
        found = True
    return found


def save(ns: str | None) -> str:
    """`iptables-save` output of namespace `ns` (for tests and `inspect`)."""
    res = run_tool(ns, [IPTABLES_SAVE], "iptables-save")
    if res.returncode != 0:
        raise KernelError(
            f"iptables-save in {ns or 'self'}: {res.stderr.strip()}",
            obj=ns or "self",
            op="iptables-save",
        )
    return res.stdout
