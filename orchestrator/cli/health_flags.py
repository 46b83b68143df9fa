"""Healthcheck flags of `service create|update`, and how a healthcheck is shown.

Docker's flags: `--health-cmd TEXT` (run by `sh -c`), `--health-interval`,
`--health-timeout`, `--health-retries`, `--health-start-period` and `--no-healthcheck`.
An image of Docker's may carry a healthcheck the flags tune; the built-in ones carry
none, so tuning flags without a command (on create, or on update of a service without a
check) are refused rather than silently doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from netagent.contract.desired import HealthCheck
from netagent.contract.errors import InvalidArgument
from orchestrator.cli.common import Duration
from orchestrator.ops.durations import format_duration
from orchestrator.ops.healthchecks import docker_test, make, shell

#: (flag, HealthCheck field, click type, help).
_SETTINGS: list[tuple[str, str, Any, str]] = [
    ("--health-interval", "interval", Duration(), "Time between running the check [30s]."),
    ("--health-timeout", "timeout", Duration(), "Maximum time to allow one check to run [30s]."),
    (
        "--health-retries",
        "retries",
        click.IntRange(min=0),
        "Consecutive failures needed to report unhealthy [3].",
    ),
    (
        "--health-start-period",
        "start_period",
        Duration(),
        "Start period for the task to initialize before failures count [0s].",
    ),
]


def health_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds Docker's healthcheck flags (all None/False when not given)."""
    fn = click.option(
        "--no-healthcheck", "no_healthcheck", is_flag=True, help="Disable any healthcheck."
    )(fn)
    for flag, field, type_, help_ in reversed(_SETTINGS):
        fn = click.option(flag, f"health_{field}", type=type_, help=help_)(fn)
    return click.option("--health-cmd", "health_cmd", help="Command to run to check health.")(fn)


def _settings(flags: dict[str, Any]) -> dict[str, Any]:
    return {
        f: flags[f"health_{f}"] for _, f, _, _ in _SETTINGS if flags.get(f"health_{f}") is not None
    }


def _refuse_both(flags: dict[str, Any]) -> None:
    if flags.get("no_healthcheck") and (_settings(flags) or flags.get("health_cmd") is not None):
        raise click.UsageError("--no-healthcheck conflicts with --health-* options")


def _build(argv: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    try:
        return make(argv, **values).model_dump(mode="json")
    except InvalidArgument as err:
        raise click.UsageError(str(err)) from None


def _needs_command(settings: dict[str, Any], why: str) -> click.BadParameter:
    flag = next(f for f, field, _, _ in _SETTINGS if field in settings)
    return click.BadParameter(f"needs --health-cmd: {why}", param_hint=f"'{flag}'")


def create_healthcheck(flags: dict[str, Any]) -> dict[str, Any] | None:
    """The healthcheck `service create` asks for (None: none)."""
    _refuse_both(flags)
    settings, cmd = _settings(flags), flags.get("health_cmd")
    if not cmd:
        if settings:
            raise _needs_command(settings, "built-in images have no healthcheck of their own")
        return None
    return _build(shell(cmd), settings)


def update_healthcheck(current: dict[str, Any] | None, flags: dict[str, Any]) -> dict | None:
    """The healthcheck after `service update`'s flags: `--no-healthcheck` (or an empty
    `--health-cmd`, as Docker reads it) removes it; other flags change their field."""
    _refuse_both(flags)
    settings, cmd = _settings(flags), flags.get("health_cmd")
    if flags.get("no_healthcheck") or cmd == "":
        return None
    if cmd is None and not settings:
        return current
    if cmd is None and current is None:
        raise _needs_command(settings, "the service has no healthcheck to change")
    base = HealthCheck.model_validate(current).model_dump() if current else {}
    argv = shell(cmd) if cmd is not None else tuple(base["test"])
    fields = {k: v for k, v in base.items() if k != "test"}
    return _build(argv, {**fields, **settings})


def healthcheck_lines(spec: dict[str, Any]) -> list[str]:
    """`service inspect --pretty`'s Healthcheck block, in the docker CLI's layout."""
    if not spec.get("healthcheck"):
        return []
    check = HealthCheck.model_validate(spec["healthcheck"])
    lines = [
        " Healthcheck:",
        f"  Interval = {format_duration(check.interval)}",
        f"  Retries = {check.retries}",
        f"  StartPeriod =\t{format_duration(check.start_period)}",
        f"  Timeout =\t{format_duration(check.timeout)}",
        "  Tests:",
    ]
    return lines + [f"\t Test = {word}" for word in docker_test(check)]


#: After CURRENT STATE in task tables, as `docker ps` shows a container's health.
_HEALTH_SUFFIX = {
    "starting": " (health: starting)",
    "healthy": " (healthy)",
    "unhealthy": " (unhealthy)",
}


def health_suffix(status: dict[str, Any]) -> str:
    """' (healthy)' etc. for a live task with a healthcheck; '' otherwise."""
    state = status.get("state", "")
    if state in ("starting", "running") and status.get("health"):
        return _HEALTH_SUFFIX.get(status["health"], "")
    return ""
