"""`--format TEMPLATE` and `inspect -f TEMPLATE`: Go templates over vxswarm's objects.

`render(template, obj)` runs one template over one object (an inspect document, an
event, a listing's row). `listing_lines` prints a listing the way docker's formatter
does: `table TEMPLATE` gives a header line (the template run over the column headers,
so `{{.CurrentState}}` heads its column "CURRENT STATE") and one aligned row per
object; any other template gives one line per object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.cli.format import align
from orchestrator.cli.gotmpl import TemplateError, execute, parse
from orchestrator.cli.gotmpl.values import method

__all__ = [
    "TemplateError",
    "check",
    "header",
    "is_table",
    "listing_lines",
    "method",
    "render",
]

TABLE = "table"


def render(template: str, obj: Any) -> str:
    """The template run over `obj`; a `template: ...` TemplateError if it cannot."""
    return execute(parse(template), obj)


def is_table(fmt: str) -> bool:
    return fmt == TABLE or fmt.startswith(TABLE + " ")


def check(fmt: str) -> str:
    """Parse a `--format` value now, so a bad template fails before anything is asked."""
    if fmt not in (TABLE, "json"):
        parse(fmt[len(TABLE) :].strip() if is_table(fmt) else fmt)
    return fmt


def header(field: str) -> str:
    """Docker's header for a field: `CurrentState` → `CURRENT STATE`, `ID` → `ID`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", field).upper()


class _Header(str):
    """A header cell; callable so a field taking arguments (`{{.Label "k"}}`) heads its
    column too."""

    def __call__(self, *args: Any) -> _Header:
        return self


def listing_lines(
    fmt: str, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str]
) -> list[str]:
    """The lines of a listing printed with `fmt` (`table TEMPLATE` or `TEMPLATE`).

    `headers` names every field a row has, with its column header."""
    if not is_table(fmt):
        return [render(fmt, row) for row in rows]
    body = fmt[len(TABLE) :].strip()
    heads = {k: _Header(v) for k, v in headers.items()}
    texts = [render(body, heads)] + [render(body, row) for row in rows]
    lines = [line.split("\t") for t in texts for line in t.split("\n")]
    return align(lines).split("\n")
