"""What every listing and inspect takes and prints, as docker's: `-f/--filter`,
`-q/--quiet`, `--no-trunc` and `--format table|json|TEMPLATE` on listings,
`-f/--format json|TEMPLATE` on inspects.

`--format json` prints the API's objects as one JSON document (scripts and the lab
driver read it); `table` and templates print rows: per object a dict of docker's field
names (`ID`, `Name`, `CurrentState`...) built by the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from orchestrator.cli import filters
from orchestrator.cli.format import echo_json
from orchestrator.cli.templates import check, header, listing_lines, render

FORMAT_HELP = (
    "table (default), json (the API's objects), 'table TEMPLATE' or 'TEMPLATE': "
    "a Go template, e.g. 'table {{.ID}}\\t{{.Name}}' or '{{json .}}'."
)

Row = dict[str, Any]


class FormatType(click.ParamType):
    """A `--format` value: a keyword or a template, parsed at once so a bad template
    fails before anything is fetched."""

    name = "format"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        return check(str(value))


@dataclass(frozen=True)
class Columns:
    """A listing's fields: the default table and every field's column header."""

    default: str
    headers: Mapping[str, str]


def columns(default: str, fields: Sequence[str], **headers: str) -> Columns:
    """Headers derived from the field names (`CurrentState` → `CURRENT STATE`) unless given."""
    return Columns(default, {f: headers.get(f, header(f)) for f in fields})


def listing_options(
    keys: Mapping[str, filters.Key] | None = None,
    quiet: str | None = "Only display IDs.",
    no_trunc: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format`, and `-f/--filter` (with the command's filter keys), `-q/--quiet`
    and `--no-trunc` where docker's command has them."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--format", "fmt", type=FormatType(), default="table", help=FORMAT_HELP)(
            fn
        )
        if no_trunc:
            fn = click.option("--no-trunc", is_flag=True, help="Do not truncate output.")(fn)
        if quiet:
            fn = click.option("-q", "--quiet", is_flag=True, help=quiet)(fn)
        if keys is not None:
            fn = click.option(
                "-f",
                "--filter",
                "filters",
                multiple=True,
                metavar="KEY=VALUE",
                callback=lambda _ctx, _param, values: filters.parse(values, keys),
                help=f"Filter output based on conditions provided ({', '.join(sorted(keys))}).",
            )(fn)
        return fn

    return wrap


def echo_rows(
    objs: Sequence[Mapping[str, Any]],
    fmt: str,
    quiet: bool,
    rows: Callable[[Sequence[Mapping[str, Any]]], Sequence[Row]],
    cols: Columns,
) -> None:
    """A listing: JSON of the objects, their IDs (-q), the default table or a template.
    A template given with -q wins, as in docker."""
    if fmt == "json":
        echo_json(list(objs))
        return
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else cols.default
    for line in listing_lines(fmt, rows(objs), cols.headers):
        click.echo(line)


def echo_inspect(objs: Sequence[Any], fmt: str) -> None:
    """`inspect`: the JSON array, or the template run over each object, one per line."""
    if fmt == "json":
        echo_json(list(objs))
        return
    for obj in objs:
        click.echo(render(fmt, obj))


def inspect_format_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=FormatType(),
        default="json",
        help="json (default) or a Go template over the JSON, e.g. '{{.Spec.Name}}'.",
    )(fn)
