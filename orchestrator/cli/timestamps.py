"""Docker's `--since` / `--until` values (`docker logs`, `docker events`), as epoch seconds.

Accepted as docker's CLI accepts them: an RFC 3339 time ('2026-12-07T01:02:03Z',
'2026-12-07T01:02:03.5+01:00'), the same without a zone or only a date (the local
time, as docker reads them), a Unix time ('1796605143', '1796605143.123456789'), or a
Go duration counted back from now ('42m', '1h30m', '10s').
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from netagent.contract.errors import InvalidArgument
from orchestrator.ops.durations import parse_duration

_UNIX_RE = re.compile(r"^\d+(\.\d{1,9})?$")
_FRACTION_RE = re.compile(r"\.(\d+)")
EXPECTED = (
    "expected an RFC 3339 time (2013-01-02T13:23:37Z), a Unix time (1356960000) or "
    "a duration counted back from now (42m)"
)


def parse_timestamp(value: str, flag: str, now: float | None = None) -> float:
    """`value` as epoch seconds; InvalidArgument naming `flag` and the value."""
    text = value.strip()
    now = time.time() if now is None else now
    if _UNIX_RE.match(text):
        return float(text)
    try:
        return now - parse_duration(text, flag)
    except InvalidArgument:
        pass
    when = _parse_rfc3339(text)
    if when is None:
        raise InvalidArgument(f"invalid value {value!r} for {flag}: {EXPECTED}")
    return when


def _parse_rfc3339(text: str) -> float | None:
    # datetime reads microseconds at most: keep the nanoseconds' first six digits.
    text = _FRACTION_RE.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Without a zone the local time, as docker's CLI reads it.
    return when.timestamp()
