"""Loads vxswarm's nft table into a namespace, only when its text changed.

Owns `table ip vxswarm` in every namespace it is asked to fill (overlay
sandboxes, the ingress sandbox, the node namespace). Each load is one `nft -f -`
run inside the namespace (`nsenter --net=...`, as netagent.kernel.iptables does): one
atomic transaction that replaces the whole table, so a reader never sees half a
ruleset and a failed load leaves the old one in place. When only some chains' rules
changed (a service's backends), just those chains are rewritten, in one transaction
too, so an endpoint change costs the same with 1 or 200 services in the table. The
text last loaded per namespace is kept in memory, so an unchanged desired state costs
no process at all; a restarted daemon reloads once, which is harmless.
"""

from __future__ import annotations

import errno
import logging
import shutil
import subprocess
import time
from collections.abc import Callable

from netagent.contract.errors import KernelError
from netagent.kernel.netns import run_tool
from netagent.lb import libnft, rules

log = logging.getLogger(__name__)

NFT = shutil.which("nft") or "/usr/sbin/nft"
#: on_load(seconds, mode): told of every load ("delta", "replace" or "delete"), for metrics.
OnLoad = Callable[[float, str], None]


def _run(ns: str | None, args: list[str], script: str | None = None) -> subprocess.CompletedProcess:
    return run_tool(ns, [NFT, *args], "nft", script)


def list_table(ns: str | None) -> str:
    """`nft list table ip vxswarm` in `ns`; '' when there is none."""
    res = _run(ns, ["list", "table", rules.FAMILY, rules.TABLE])
    return res.stdout if res.returncode == 0 else ""


def list_table_json(ns: str | None) -> str | None:
    """`nft -j list table ip vxswarm` in `ns` (JSON text); None when there is no such table.
    In-process through libnftables when it is there (drift checks run it every few
    seconds), else the nft program."""
    command = f"list table {rules.FAMILY} {rules.TABLE}"
    if libnft.available():
        code, out, err = libnft.run_json(ns, command)
    else:
        res = _run(ns, ["-j", *command.split()])
        code, out, err = res.returncode, res.stdout, res.stderr
    if code != 0:
        log.debug("no nft table in %s: %s", ns or "node ns", err.strip())
        return None
    return out


class TableLoader:
    """Loads `table ip vxswarm` per namespace, remembering what each holds."""

    def __init__(self, on_load: OnLoad | None = None) -> None:
        #: namespace (None = the node namespace when the daemon runs inside it) -> text.
        self._loaded: dict[str | None, str] = {}
        self.on_load = on_load

    def ensure(self, ns: str | None, table_text: str) -> bool:
        """Make the namespace's table equal `table_text` ('' = no table); True if loaded now."""
        if self._loaded.get(ns) == table_text:
            return False
        if not table_text and ns not in self._loaded:
            # Never loaded by this daemon: a leftover table is still removed, quietly.
            self._timed_load(ns, rules.replace_script(""), "delete")
            self._loaded[ns] = ""
            return False
        delta = rules.delta_script(self._loaded.get(ns, ""), table_text)
        if delta:
            self._timed_load(ns, delta, "delta")
        else:
            self._timed_load(ns, rules.replace_script(table_text), "replace")
        self._loaded[ns] = table_text
        return True

    def forget(self, ns: str | None) -> None:
        """The namespace is gone (or about to be): drop what we knew of it."""
        self._loaded.pop(ns, None)

    def _timed_load(self, ns: str | None, script: str, mode: str) -> None:
        start = time.perf_counter()
        try:
            self._load(ns, script)
        finally:  # a failed load took its time too
            if self.on_load is not None:
                self.on_load(time.perf_counter() - start, mode)

    def _load(self, ns: str | None, script: str) -> None:
        if libnft.available():
            code, err = libnft.run(ns, script)
        else:  # no library: the nft program does the same, slower
            res = _run(ns, ["-f", "-"], script)
            code, err = res.returncode, res.stderr
        if code != 0:
            self._loaded.pop(ns, None)  # unknown now: the next ensure reloads it
            raise KernelError(
                f"nft -f in {ns or 'node ns'}: {err.strip()}",
                obj=ns or "node ns",
                op="nft load",
                errno=errno.EINVAL,
            )


def delete_table(ns: str | None) -> bool:
    """Delete `table ip vxswarm` in `ns` if present; True if it was there.

    Deleting through `replace_script("")` succeeds whether or not the table exists,
    so no error text needs reading; the listing before says whether it was there."""
    existed = bool(list_table(ns))
    TableLoader()._load(ns, rules.replace_script(""))
    return existed
