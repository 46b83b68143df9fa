"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.output import inspect_format_option
from orchestrator.node.client import Client, Endpoint
from orchestrator.ops.durations import parse_duration


class DockerGroup(click.Group):
    """A command group that also answers to docker's aliases of its commands:
    `ls` is `list`, `rm` is `remove` (and `down`, for stacks)."""

    def __init__(self, *args: Any, aliases: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aliases = {"list": "ls", "remove": "rm", **(aliases or {})}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.aliases:
            found = super().get_command(ctx, self.aliases[cmd_name])
        return found


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
