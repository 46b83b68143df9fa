"""CPU and memory amounts as docker spells them, parsed and printed. Pure.

`--limit-cpu 0.5` / compose `cpus: '0.5'` is a decimal number of CPUs, kept as
NanoCPUs (0.5 -> 500000000), exact: "0.0000000001" is refused as too precise, as
docker refuses it. `--limit-memory 512M` / compose `memory: 1g` is bytes with an
optional binary unit (b, k, m, g, t, p; "kb", "mib" and a space before the unit are
accepted too, as docker's RAMInBytes does). Printed back as docker prints them:
CPUs with Go's shortest float form ("0.5", "2"), bytes as units.BytesSize does
("512MiB", "23.54GiB").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from netagent.contract.desired import Resources

NANO = 1_000_000_000
#: Docker refuses a memory limit under 6 MiB ("Minimum memory limit allowed is 6MB").
MIN_MEMORY_LIMIT = 6 * 1024 * 1024
#: The smallest CPU limit a CFS quota can hold (1 ms per 100 ms period): docker's 0.01.
MIN_CPU_LIMIT = NANO // 100

_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?\Z", re.IGNORECASE)
_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

CPU_EXPECTED = "expected a decimal number of CPUs, e.g. 0.5 or 2"
MEMORY_EXPECTED = "expected bytes or a number with a unit b, k, m, g, t or p, e.g. 512m or 1g"


class ResourceValueError(ValueError):
    """A value that does not parse; the message names it and what was expected."""


def parse_cpus(text: str | float | int, what: str = "cpus") -> int:
    """'0.5' -> 500000000 NanoCPUs."""
    if isinstance(text, bool):
        raise ResourceValueError(f"invalid {what} value {text!r}: {CPU_EXPECTED}")
    try:
        amount = Decimal(str(text).strip())
    except InvalidOperation:
        raise ResourceValueError(f"invalid {what} value {text!r}: {CPU_EXPECTED}") from None
    if not amount.is_finite() or amount < 0:
        raise ResourceValueError(f"invalid {what} value {text!r}: {CPU_EXPECTED}")
    nano = amount * NANO
    if nano != nano.to_integral_value():
        raise ResourceValueError(
            f"invalid {what} value {text!r}: too precise, expected at most 9 decimal places"
        )
    return int(nano)


def parse_memory(text: str | int, what: str = "memory") -> int:
    """'512M' -> 536870912 bytes; a bare number is bytes."""
    if isinstance(text, bool):
        raise ResourceValueError(f"invalid {what} value {text!r}: {MEMORY_EXPECTED}")
    if isinstance(text, int):
        if text < 0:
            raise ResourceValueError(f"invalid {what} value {text!r}: {MEMORY_EXPECTED}")
        return text
    match = _MEMORY_RE.match(str(text).strip())
    if match is None:
        raise ResourceValueError(f"invalid {what} value {text!r}: {MEMORY_EXPECTED}")
    number, unit = match.groups()
    return int(Decimal(number) * _UNITS[unit.lower() if unit else None])


def cpus_text(nano_cpus: int) -> str:
    """500000000 -> '0.5', 2000000000 -> '2' (Go's %v of a float64, as docker prints)."""
    return f"{Decimal(nano_cpus) / NANO:f}".rstrip("0").rstrip(".") if nano_cpus else "0"


def bytes_size(size: float) -> str:
    """Docker's units.BytesSize: 4 significant digits and a binary unit."""
    i = 0
    while size >= 1024 and i < len(_SIZES) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_SIZES[i]}"


def check_limits(limits: Resources) -> Resources:
    """A spec's limits, refused when a task's cgroup could not hold them (docker's
    minimums: 6 MiB of memory, 0.01 CPUs); 0 is no limit."""
    if 0 < limits.memory_bytes < MIN_MEMORY_LIMIT:
        raise ValueError(
            f"invalid memory limit {bytes_size(limits.memory_bytes)}: expected at least 6MiB "
            "(the smallest limit docker allows)"
        )
    if 0 < limits.nano_cpus < MIN_CPU_LIMIT:
        raise ValueError(
            f"invalid CPU limit {cpus_text(limits.nano_cpus)}: expected at least 0.01 CPUs"
        )
    return limits


def resources_key(limits: Resources, reservations: Resources) -> dict[str, object]:
    """The resources' part of a service's task key: empty when none are set, so that
    the keys (and tasks) of services without resources stay what they were."""
    if limits == Resources() and reservations == Resources():
        return {}
    return {"resources": [limits.model_dump(), reservations.model_dump()]}
