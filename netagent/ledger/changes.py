"""What an apply changed, each change with its reason (containerlab's plan/result style).

Every `ensure_*` step returns the changes it made, so `DataPlane.apply` can say
exactly what it added, removed or recreated and why ("recreate vxlan vx-4097:
vni 4097 vs 4098"), and a no-op apply is visibly empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Change:
    """One kernel or process change: `action` on `obj` because `reason`."""

    action: str  # add | remove | update | recreate | start | stop | fail
    obj: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.obj}" + (f": {self.reason}" if self.reason else "")


@dataclass
class ApplyResult:
    """The outcome of one `DataPlane.apply`: changes in order, and task errors."""

    version: int
    changes: list[Change] = field(default_factory=list)
    #: task id -> one-line error for tasks that could not be built.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def touching(self, text: str) -> list[Change]:
        """Changes whose object mentions `text` (a link, MAC, IP or namespace)."""
        return [c for c in self.changes if text in c.obj]

    def __str__(self) -> str:
        lines = [f"apply v{self.version}: {len(self.changes)} change(s)"]
        lines += [f"  {c}" for c in self.changes]
        lines += [f"  error {tid}: {err}" for tid, err in self.errors.items()]
        return "\n".join(lines)
