"""Healthcheck flags of `service create|update`, compose `healthcheck:`, and their display."""

from __future__ import annotations

import click
import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.health_flags import (
    create_healthcheck,
    health_suffix,
    healthcheck_lines,
    update_healthcheck,
)
from orchestrator.ops.healthchecks import test_argv as argv_of
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert

SH = ["sh", "-c"]


def flags(**kw) -> dict:
    base = {
        "health_cmd": None,
        "health_interval": None,
        "health_timeout": None,
        "health_retries": None,
        "health_start_period": None,
        "no_healthcheck": False,
    }
    return {**base, **kw}


def test_create_takes_dockers_defaults_and_runs_the_command_by_sh():
    assert create_healthcheck(flags(health_cmd="curl -f localhost")) == {
        "test": [*SH, "curl -f localhost"],
        "interval": 30.0,
        "timeout": 30.0,
        "retries": 3,
        "start_period": 0.0,
    }
    hc = create_healthcheck(flags(health_cmd="true", health_interval=2.0, health_retries=0))
    assert hc is not None and (hc["interval"], hc["retries"]) == (2.0, 3)  # 0: the default


def test_create_without_flags_has_no_healthcheck():
    assert create_healthcheck(flags()) is None
    assert create_healthcheck(flags(no_healthcheck=True)) is None


def test_tuning_flags_without_a_command_are_refused_naming_the_flag():
    with pytest.raises(click.BadParameter, match="needs --health-cmd") as err:
        create_healthcheck(flags(health_timeout=3.0))
    assert "--health-timeout" in err.value.format_message()


def test_no_healthcheck_conflicts_with_the_other_flags():
    with pytest.raises(click.UsageError, match="--no-healthcheck conflicts with --health-"):
        create_healthcheck(flags(no_healthcheck=True, health_cmd="true"))
    with pytest.raises(click.UsageError, match="conflicts"):
        update_healthcheck(None, flags(no_healthcheck=True, health_retries=2))


def test_update_changes_one_field_and_keeps_the_others():
    current = create_healthcheck(flags(health_cmd="true", health_interval=5.0))
    assert update_healthcheck(current, flags()) == current
    out = update_healthcheck(current, flags(health_retries=7))
    assert out == {**current, "retries": 7}  # type: ignore[dict-item]
    out = update_healthcheck(current, flags(health_cmd="false"))
    assert out == {**current, "test": [*SH, "false"]}  # type: ignore[dict-item]


def test_update_removes_it_with_no_healthcheck_or_an_empty_command():
    current = create_healthcheck(flags(health_cmd="true"))
    assert update_healthcheck(current, flags(no_healthcheck=True)) is None
    assert update_healthcheck(current, flags(health_cmd="")) is None


def test_update_of_a_service_without_one_needs_a_command():
    with pytest.raises(click.BadParameter, match="has no healthcheck to change"):
        update_healthcheck(None, flags(health_interval=1.0))
    assert update_healthcheck(None, flags(health_cmd="true"))["test"] == [*SH, "true"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("test", "argv"),
    [
        (["CMD", "test", "-f", "/x"], ("test", "-f", "/x")),
        (["CMD-SHELL", "test -f /x"], ("sh", "-c", "test -f /x")),
        ("test -f /x", ("sh", "-c", "test -f /x")),
        (["NONE"], None),
    ],
)
def test_dockers_test_forms(test, argv):
    assert argv_of(test) == argv


@pytest.mark.parametrize("test", [[], ["CMD"], ["CMD-SHELL"], ["RUN", "x"], "  "])
def test_a_bad_test_is_refused_naming_it(test):
    with pytest.raises(ValueError, match="invalid healthcheck test .*expected"):
        argv_of(test)


def _compose(healthcheck: dict) -> dict | None:
    compose, ignored = parse({"services": {"web": {"image": "whoami", "healthcheck": healthcheck}}})
    assert "healthcheck" not in ignored
    (svc,) = convert(compose, "shop", {}).services
    return svc["healthcheck"]


def test_compose_healthcheck():
    hc = _compose(
        {
            "test": ["CMD", "wget", "-q", "localhost"],
            "interval": "10s",
            "timeout": "2s",
            "retries": 5,
            "start_period": "1m",
        }
    )
    assert hc == {
        "test": ["wget", "-q", "localhost"],
        "interval": 10.0,
        "timeout": 2.0,
        "retries": 5,
        "start_period": 60.0,
    }
    assert _compose({"test": "true"})["test"] == [*SH, "true"]  # type: ignore[index]
    assert _compose({"disable": True}) is None
    assert _compose({"test": ["NONE"]}) is None


@pytest.mark.parametrize(
    ("healthcheck", "why"),
    [
        ({"test": "true", "disable": True}, "test and disable can't be set at the same time"),
        ({"interval": "5s"}, "test is missing"),
        ({"test": ["RUN", "x"]}, "invalid healthcheck test"),
        ({"test": "true", "interval": 5}, "expected a duration"),
        ({"test": "true", "retries": -1}, "expected a number >= 0"),
        ({"test": "true", "intervall": "5s"}, "unknown key (did you mean 'interval'?)"),
    ],
)
def test_compose_healthcheck_errors_name_the_key(healthcheck, why):
    with pytest.raises(InvalidArgument, match=r"^services\.web\.healthcheck") as err:
        _compose(healthcheck)
    assert why in str(err.value)


def test_pretty_prints_the_block_as_docker():
    spec = {
        "healthcheck": create_healthcheck(flags(health_cmd="test -f /ok", health_interval=90.0))
    }
    assert healthcheck_lines(spec) == [
        " Healthcheck:",
        "  Interval = 1m30s",
        "  Retries = 3",
        "  StartPeriod =\t0s",
        "  Timeout =\t30s",
        "  Tests:",
        "\t Test = CMD-SHELL",
        "\t Test = test -f /ok",
    ]
    assert healthcheck_lines({"healthcheck": None}) == []


def test_current_state_suffix():
    assert health_suffix({"state": "running", "health": "healthy"}) == " (healthy)"
    assert health_suffix({"state": "running", "health": "unhealthy"}) == " (unhealthy)"
    assert health_suffix({"state": "starting", "health": "starting"}) == " (health: starting)"
    assert health_suffix({"state": "running", "health": None}) == ""
    assert health_suffix({"state": "failed", "health": "unhealthy"}) == ""
