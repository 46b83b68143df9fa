"""Docker's spellings of commands and flags, parsed as Docker's are."""

from __future__ import annotations

import re
import time

import click
import pytest
from click.testing import CliRunner

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.main import cli
from orchestrator.cli.network import prune_filters, until_time
from orchestrator.ops.inputs import advertised_host
from orchestrator.ops.random_names import random_name


@pytest.mark.parametrize(
    ("words", "command"),
    [
        (["service", "remove"], "rm"),
        (["service", "list"], "ls"),
        (["stack", "remove"], "rm"),
        (["stack", "down"], "rm"),
        (["node", "remove"], "rm"),
        (["network", "list"], "ls"),
    ],
)
def test_dockers_aliases_name_the_same_command(words, command):
    group = cli.get_command(click.Context(cli), words[0])
    assert isinstance(group, click.Group)
    ctx = click.Context(group)
    assert group.get_command(ctx, words[1]) is group.get_command(ctx, command)


def test_an_alias_runs_the_command():
    done = CliRunner().invoke(cli, ["stack", "down", "--help"])
    assert done.exit_code == 0
    assert "Usage: cli stack down" in done.output


def test_an_unknown_command_is_still_refused():
    done = CliRunner().invoke(cli, ["service", "delete"])
    assert done.exit_code == 2
    assert "No such command 'delete'" in done.output


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("192.168.56.11", "192.168.56.11"),
        ("192.168.56.11:2377", "192.168.56.11"),
        ("eth0:2377", "eth0"),
    ],
)
def test_advertise_addr_takes_an_address_or_interface_and_this_nodes_port(text, host):
    assert advertised_host(text, 2377) == host


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.168.56.11:4000", "port 4000 is not the port this node listens on (2377"),
        ("192.168.56.11:http", "expected ADDRESS or INTERFACE, optionally followed by :PORT"),
        (":2377", "expected ADDRESS or INTERFACE"),
    ],
)
def test_a_bad_advertise_addr_is_refused_naming_it(text, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        advertised_host(text, 2377)


def test_prune_filters_become_the_requests_fields():
    body = prune_filters(("label=env=test", "label!=keep", "until=1700000000"))
    assert body == {"until": 1700000000.0, "label": ["env=test"], "label_not": ["keep"]}


def test_prune_until_takes_a_duration_or_a_date():
    assert abs(until_time("1h") - (time.time() - 3600)) < 5
    assert until_time("2026-01-01T00:00:00Z") == 1767225600.0


@pytest.mark.parametrize("bad", ["dangling=true", "until=soon", "label="])
def test_a_bad_prune_filter_is_refused_naming_it(bad):
    with pytest.raises(click.BadParameter, match="invalid"):
        prune_filters((bad,))


def test_generated_names_avoid_taken_ones():
    class Fixed:
        def __init__(self) -> None:
            self.n = 0

        def choice(self, seq):
            return seq[0]

        def randint(self, a, b):
            self.n += 1
            return self.n % 10

    first = random_name(set(), Fixed())  # type: ignore[arg-type]
    assert first == "agile_baran"
    again = random_name({first}, Fixed())  # type: ignore[arg-type]
    assert again != first and again.startswith("agile_baran")
