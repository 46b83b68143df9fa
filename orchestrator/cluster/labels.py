"""Docker's label filter, one rule for every place that matches labels: `KEY` (the
label is set, to anything) or `KEY=VALUE` (set to exactly that)."""

from __future__ import annotations

from collections.abc import Mapping


def has_label(labels: Mapping[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    return key in labels and (not sep or labels[key] == value)
