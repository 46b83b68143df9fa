"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.output import inspect_format_option
from orchestrator.node.client import Client, Endpoint
from orchestrator.ops.durations import parse_duration


def api() -> Client:
    return Client(Endpoint.from_env())


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Output format ('json' for scripts).",
    )(fn)


class Duration(click.ParamType):
    """A Go-style duration ('1s', '500ms'), as seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, int | float):
            return float(value)
        flag = f"--{param.name.replace('_', '-')}" if param and param.name else "duration"
        try:
            return parse_duration(str(value), flag)
        except InvalidArgument as err:
            self.fail(str(err), param, ctx)


def inspect_options(pretty: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """What every `inspect` takes, as docker's: REFS..., `-f/--format json|TEMPLATE`
    (JSON by default) and, where a human layout exists, `--pretty`."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = inspect_format_option(fn)
        fn = click.argument("refs", nargs=-1, required=True)(fn)
        if pretty:
            fn = click.option(
                "--pretty", is_flag=True, help="Print the information in a human friendly format."
            )(fn)
        return fn

    return wrap
