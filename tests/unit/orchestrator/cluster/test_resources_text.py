"""Docker's CPU and memory value syntax, and how docker prints the amounts back."""

import pytest

from netagent.contract.desired import Resources
from orchestrator.cluster.objects import ServiceSpec
from orchestrator.cluster.resources_text import (
    ResourceValueError,
    bytes_size,
    cpus_text,
    parse_cpus,
    parse_memory,
)


@pytest.mark.parametrize(
    ("text", "nano"),
    [("0.5", 500_000_000), ("2", 2_000_000_000), (1.5, 1_500_000_000), ("0.000000001", 1),
     (" 1 ", 1_000_000_000), ("0", 0)],
)  # fmt: skip
def test_cpus_are_decimal_numbers_of_cpus(text, nano):
    assert parse_cpus(text) == nano


@pytest.mark.parametrize("text", ["abc", "-1", "1,5", "", "nan", "inf", "0.5cpu", True])
def test_bad_cpus_are_refused_naming_the_value(text):
    with pytest.raises(ResourceValueError, match=r"invalid cpus value .*expected a decimal"):
        parse_cpus(text)


def test_too_precise_cpus_are_refused():
    with pytest.raises(ResourceValueError, match="too precise"):
        parse_cpus("0.0000000001")


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 << 20), ("512m", 512 << 20), ("1g", 1 << 30), ("1G", 1 << 30),
     ("1024", 1024), (2048, 2048), ("1.5g", 3 << 29), ("64mb", 64 << 20), ("64MiB", 64 << 20),
     ("10 k", 10240), ("7b", 7), ("1t", 1 << 40)],
)  # fmt: skip
def test_memory_is_bytes_with_an_optional_binary_unit(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["12x", "m", "-5m", "1..5g", "5 gigs", -1, "", "0x10"])
def test_bad_memory_is_refused_naming_the_value(text):
    with pytest.raises(ResourceValueError, match=r"invalid memory value .*expected bytes"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("nano", "text"), [(500_000_000, "0.5"), (2_000_000_000, "2"), (1, "0.000000001"), (0, "0")]
)
def test_cpus_print_as_go_prints_a_float(nano, text):
    assert cpus_text(nano) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(512 << 20, "512MiB"), (1 << 30, "1GiB"), (25276194816, "23.54GiB"), (100, "100B"),
     (1536, "1.5KiB")],
)  # fmt: skip
def test_bytes_print_as_docker_units_bytes_size(size, text):
    assert bytes_size(size) == text


def test_a_spec_refuses_limits_a_cgroup_cannot_hold():
    with pytest.raises(ValueError, match="invalid memory limit 1MiB: expected at least 6MiB"):
        ServiceSpec(name="w", image="whoami", limits=Resources(memory_bytes=1 << 20))
    with pytest.raises(ValueError, match="invalid CPU limit 0.001: expected at least 0.01"):
        ServiceSpec(name="w", image="whoami", limits=Resources(nano_cpus=1_000_000))
    # Reservations have no minimum (docker has none).
    ServiceSpec(name="w", image="whoami", reservations=Resources(memory_bytes=1))
