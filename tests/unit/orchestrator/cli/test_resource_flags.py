"""--limit-*/--reserve-* on service create/update, compose deploy.resources, and
`service inspect --pretty`'s Resources block."""

import pytest
from click.testing import CliRunner

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.main import cli
from orchestrator.cli.resource_flags import apply_resources
from orchestrator.cli.service_pretty import resources_lines
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert


@pytest.mark.parametrize(
    ("flag", "value", "shown"),
    [("--limit-memory", "12x", "invalid memory value '12x'"),
     ("--reserve-cpu", "half", "invalid cpus value 'half'"),
     ("--limit-cpu", "0.0000000001", "too precise")],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_flag_and_value(flag, value, shown, monkeypatch):
    monkeypatch.setenv("VXSWARM_HOST", "unix:///nonexistent/vxswarm.sock")
    for argv in (["service", "create", "--name", "w", flag, value, "whoami"],
                 ["service", "update", flag, value, "w"]):  # fmt: skip
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 2
        assert f"Invalid value for '{flag}'" in result.output and shown in result.output


def test_update_sets_only_the_flags_given_and_zero_clears():
    spec = {"name": "w", "limits": {"nano_cpus": 5, "memory_bytes": 7}, "reservations": {}}
    flags = {"limit_cpu": 0, "limit_memory": None, "reserve_cpu": None, "reserve_memory": 1024}
    new = apply_resources(spec, flags)
    assert new["limits"] == {"nano_cpus": 0, "memory_bytes": 7}
    assert new["reservations"] == {"memory_bytes": 1024}
    assert flags == {}  # taken out: the rest of update's flags go on without them
    assert spec["limits"] == {"nano_cpus": 5, "memory_bytes": 7}  # not changed in place


def _service(deploy: dict) -> dict:
    compose, _ = parse({"services": {"web": {"image": "whoami", "deploy": deploy}}})
    return convert(compose, "shop", {}).services[0]


def test_compose_deploy_resources_become_limits_and_reservations():
    svc = _service(
        {
            "resources": {
                "limits": {"cpus": "0.5", "memory": "64M", "pids": 10},
                "reservations": {"cpus": 0.25, "memory": 1048576},
            }
        }  # fmt: skip
    )
    assert svc["limits"] == {"nano_cpus": 500_000_000, "memory_bytes": 64 << 20}
    assert svc["reservations"] == {"nano_cpus": 250_000_000, "memory_bytes": 1 << 20}


def test_compose_bad_amounts_name_their_key_path():
    where = r"services.web.deploy.resources.limits"
    with pytest.raises(InvalidArgument, match=rf"{where}.memory: .*'lots'"):
        _service({"resources": {"limits": {"memory": "lots"}}})
    with pytest.raises(InvalidArgument, match=rf"{where}: invalid memory limit 1KiB"):
        _service({"resources": {"limits": {"memory": "1k"}}})


def test_pretty_shows_reservations_then_limits_as_docker():
    spec = {"limits": {"nano_cpus": 500_000_000, "memory_bytes": 512 << 20},
            "reservations": {"nano_cpus": 0, "memory_bytes": 1 << 30}}  # fmt: skip
    assert resources_lines(spec) == [
        "Resources:", " Reservations:", "  Memory:\t1GiB",
        " Limits:", "  CPU:\t\t0.5", "  Memory:\t512MiB",
    ]  # fmt: skip
    assert resources_lines({"limits": {"nano_cpus": 0, "memory_bytes": 0}}) == []
