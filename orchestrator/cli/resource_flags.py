"""`--limit-cpu`, `--limit-memory`, `--reserve-cpu`, `--reserve-memory` on `service create`
and `service update`, in docker's value syntax (orchestrator.cluster.resources_text).

A bad value is refused by click with one line naming the flag and the value, before
anything is sent to the manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from orchestrator.cluster.resources_text import ResourceValueError, parse_cpus, parse_memory

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class _Amount(click.ParamType):
    def __init__(self, name: str, parse: Callable[[str], int]):
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return self._parse(value)
        except ResourceValueError as err:
            self.fail(str(err), param, ctx)


CPUS = _Amount("decimal", parse_cpus)
MEMORY = _Amount("bytes", parse_memory)

#: (flag, spec section, Resources field, click type, help).
_FLAGS = (
    ("--limit-cpu", "limits", "nano_cpus", CPUS, "Limit CPUs (e.g. 0.5)."),
    ("--limit-memory", "limits", "memory_bytes", MEMORY, "Limit memory (e.g. 512M)."),
    ("--reserve-cpu", "reservations", "nano_cpus", CPUS, "Reserve CPUs (e.g. 0.5)."),
    ("--reserve-memory", "reservations", "memory_bytes", MEMORY, "Reserve memory (e.g. 512M)."),
)


def _key(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def resource_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The four flags, each None unless given (0 sets "no limit"/"no reservation")."""
    for flag, _, _, type_, help_ in reversed(_FLAGS):
        fn = click.option(flag, _key(flag), type=type_, default=None, help=help_)(fn)
    return fn


def apply_resources(spec: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """`spec` with the given flags' values set in its `limits` / `reservations` (the
    others kept: `service update` changes only what it is told). Takes the flags out
    of `flags`, so the caller passes the rest on."""
    new = dict(spec)
    for flag, section, field, _, _ in _FLAGS:
        value = flags.pop(_key(flag), None)
        if value is not None:
            new[section] = {**new.get(section, {}), field: value}
    return new
