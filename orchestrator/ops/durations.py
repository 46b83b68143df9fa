"""Go-style durations ("1s", "500ms", "1m30s") as the docker CLI takes them, and the
human "5 seconds ago" wording it prints."""

from __future__ import annotations

import re

from netagent.contract.errors import InvalidArgument

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str = "duration") -> float:
    """'1m30s' → 90.0 seconds; a bare number is refused, as Go's time.ParseDuration does."""
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise InvalidArgument(
            f"invalid {flag} {text!r}: expected a duration like 10s, 500ms or 1m30s"
        )
    return total


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: 'Less than a second', '5 seconds', 'About a minute', ..."""
    s = int(seconds)
    if seconds < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def format_duration(seconds: float) -> str:
    """10.0 → '10s', 90 → '1m30s', 0.5 → '500ms' (Go's String() for whole units)."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{sec}s"
    return out
