"""The daemon's own drift check: every few seconds, find and repair drift made behind its back.

Owns one thread per data plane. Each pass is a netagent.drift.check of the last applied
desired state without the costly parts (no DNS round trips, no iptables process:
netlink dumps, /proc reads and an in-process nft listing per namespace), then a repair
of what it found, each fix logged and counted (vxswarm_repairs_total{kind=...}).

Left to others, not repaired here: an ended task the manager has been told about (the
heartbeat carries every status), a namespace nothing uses (deleting is for the user to
ask, with `vxswarm verify --fix`), a namespace that cannot be read. A difference that
comes back right after its repair (something keeps undoing it, or the check expects
the wrong thing) is retried with a doubling back-off, up to every 64 passes, and logged
once instead of every pass.

Period: `VXSWARM_SELF_CHECK` in the daemon's environment, in seconds (default 3;
0 turns the check off, e.g. for tests that sabotage the kernel and verify by hand).
Periodic rather than netlink events: one pass over a node with a few networks and tasks
costs milliseconds (see bench/drift.py), while events would need a listening socket
in every sandbox and still miss nft and process drift.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from netagent.contract.errors import InvalidArgument
from netagent.drift.check import check
from netagent.drift.model import Difference, Fix, Kind
from netagent.drift.repair import repair

if TYPE_CHECKING:
    from netagent.agent.dataplane import DataPlane

log = logging.getLogger(__name__)

ENV = "VXSWARM_SELF_CHECK"
DEFAULT_INTERVAL = 3.0
MAX_BACKOFF_PASSES = 64


def interval_from_env(env: dict[str, str] | None = None) -> float:
    """The self-check period from VXSWARM_SELF_CHECK (seconds; 0 = off)."""
    text = (env if env is not None else os.environ).get(ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise InvalidArgument(
            f"invalid {ENV} {text!r}: expected seconds between 0 and 3600 (0 turns the "
            "self-check off)",
            obj=text,
            op="self-check",
        )
    return value


def repairable(d: Difference) -> bool:
    """Whether the self-check repairs this difference (see the module docstring)."""
    if d.kind == Kind.NODE or d.fix in (Fix.NONE, Fix.REMOVE_NETNS):
        return False
    # An ended task is the heartbeat's to report; only a death nobody saw is drift.
    return not (d.fix == Fix.REPORT_TASK and d.got != "dead")


class SelfCheck:
    """Runs `run_once` every `interval` seconds in its own thread until stopped."""

    def __init__(self, dp: DataPlane, interval: float) -> None:
        self.dp = dp
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass = 0
        #: difference line -> (failed repairs in a row, pass before which not to retry)
        self._backoff: dict[str, tuple[int, int]] = {}
        self._last_error = ""
        #: Seconds the last pass took (check and repair), for measuring its cost.
        self.last_seconds = 0.0

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="drift-self-check", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
                self._last_error = ""
            except Exception as exc:  # the loop must outlive any one bad pass
                if str(exc) != self._last_error:
                    log.exception("drift self-check failed")
                    self._last_error = str(exc)

    def run_once(self) -> list[Difference]:
        """One pass: check, repair what is ours to repair; what was repaired."""
        start = time.perf_counter()
        self._pass += 1
        found = [d for d in check(self.dp, dns=False, iptables=False) if repairable(d)]
        due = [d for d in found if self._backoff.get(d.line(), (0, 0))[1] <= self._pass]
        fixed: list[Difference] = []
        if due:
            fixed = repair(self.dp, due, why="self-check").fixed
        lines = {d.line() for d in found}
        for line in list(self._backoff):
            if line not in lines:
                del self._backoff[line]  # gone: a later drift starts afresh
        for d in due:
            tries, _ = self._backoff.get(d.line(), (0, 0))
            if tries:  # repaired before, and back already
                log.warning("drift keeps coming back: %s %s: %s", d.kind, d.object, d.problem)
            wait = min(2**tries, MAX_BACKOFF_PASSES)
            self._backoff[d.line()] = (tries + 1, self._pass + wait)
        self.last_seconds = time.perf_counter() - start
        return fixed
