"""A service's healthcheck from what Docker users write, and back for display.

Docker spells a check's command as a list whose first word says how to run the rest:
`["CMD", "prog", "arg"]` (run as is), `["CMD-SHELL", "text"]` (run by `sh -c`) or
`["NONE"]` (no check); the CLI's `--health-cmd TEXT` and a compose string are CMD-SHELL.
The agent gets an argv (netagent.contract.desired.HealthCheck.test). A duration or a
retry count of 0 means Docker's default, as the Docker engine reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

from netagent.contract.desired import HealthCheck
from netagent.contract.errors import InvalidArgument

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
_SHELL = ("sh", "-c")
TEST_EXPECTED = 'expected ["CMD", ARG...], ["CMD-SHELL", "COMMAND"], ["NONE"] or a string'


def shell(command: str) -> tuple[str, ...]:
    """The argv of a CMD-SHELL check."""
    return (*_SHELL, command)


def test_argv(test: str | Sequence[str]) -> tuple[str, ...] | None:
    """Docker's test (a list, or a string: CMD-SHELL) as the argv to run; None for NONE.

    ValueError (one line, naming the value) when it is none of Docker's forms."""
    if isinstance(test, str):
        if not test.strip():
            raise ValueError(f"invalid healthcheck test {test!r}: {TEST_EXPECTED}")
        return shell(test)
    words = list(test)
    kind, rest = (words[0], words[1:]) if words else ("", [])
    if kind == "NONE":
        return None
    if kind == "CMD" and rest:
        return tuple(rest)
    if kind == "CMD-SHELL" and rest and " ".join(rest).strip():
        return shell(" ".join(rest))  # the Docker engine joins the words the same way
    raise ValueError(f"invalid healthcheck test {words!r}: {TEST_EXPECTED}")


def docker_test(check: HealthCheck) -> list[str]:
    """The check's command in Docker's form (what `inspect --pretty` prints)."""
    if len(check.test) == 3 and check.test[:2] == _SHELL:
        return ["CMD-SHELL", check.test[2]]
    return ["CMD", *check.test]


def make(
    argv: tuple[str, ...],
    interval: float = 0,
    timeout: float = 0,
    retries: int = 0,
    start_period: float = 0,
) -> HealthCheck:
    """A healthcheck with Docker's defaults for what is 0; InvalidArgument if negative."""
    for name, value in (
        ("interval", interval),
        ("timeout", timeout),
        ("retries", retries),
        ("start period", start_period),
    ):
        if value < 0:
            raise InvalidArgument(
                f"invalid healthcheck {name} {value!r}: expected 0 (the default) or more"
            )
    return HealthCheck(
        test=argv,
        interval=interval or DEFAULT_INTERVAL,
        timeout=timeout or DEFAULT_TIMEOUT,
        retries=retries or DEFAULT_RETRIES,
        start_period=start_period,
    )
