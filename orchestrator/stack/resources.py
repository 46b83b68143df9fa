"""Compose `deploy.resources` as ServiceSpec fields: cpus -> nano_cpus, memory -> bytes."""

from __future__ import annotations

from typing import Any

from orchestrator.stack.compose import Resources


def resources_spec(resources: Resources) -> dict[str, Any]:
    """The `limits` and `reservations` of a ServiceSpec (zeros: none)."""
    return {
        section: {"nano_cpus": amounts.cpus, "memory_bytes": amounts.memory}
        for section, amounts in (
            ("limits", resources.limits),
            ("reservations", resources.reservations),
        )
    }
