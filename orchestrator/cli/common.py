"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from netagent.errors import InvalidArgument
from orchestrator.client import Client, Endpoint
from orchestrator.durations import parse_duration


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
