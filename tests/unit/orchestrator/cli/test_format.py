"""Docker-style output of the CLI: tables, durations, flags."""

import click
import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.format import table
from orchestrator.cli.service import parse_network_flag
from orchestrator.cli.task_table import task_rows
from orchestrator.node.client import Endpoint
from orchestrator.ops.durations import format_duration, human_duration, parse_duration


def test_table_pads_columns_like_docker_tabwriter():
    out = table(["ID", "NAME"], [("abc", "web"), ("abcdefghijkl", "x")])
    assert out.splitlines() == [
        "ID" + " " * 13 + "NAME",
        "abc" + " " * 12 + "web",
        "abcdefghijkl   x",
    ]


def test_table_columns_are_at_least_ten_wide_and_last_is_not_padded():
    out = table(["A", "B", "C"], [("1", "2", "3")])
    assert out.splitlines()[1] == "1         2         3"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_parse_duration_accepts_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1s2", "-1s"])
def test_parse_duration_refuses_garbage_naming_the_value(text):
    with pytest.raises(InvalidArgument, match=f"invalid --stop-grace-period {text!r}"):
        parse_duration(text, "--stop-grace-period")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3700, "About an hour"),
        (7300, "2 hours"),
    ],
)
def test_human_duration_matches_docker_wording(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (90, "1m30s"), (0.5, "500ms")])
def test_format_duration_prints_go_style(seconds, text):
    assert format_duration(seconds) == text


def test_endpoint_is_a_unix_socket():
    assert Endpoint.parse("unix:///run/x.sock").uds == "/run/x.sock"


@pytest.mark.parametrize("host", ["tcp://192.168.56.11:2377", "https://192.168.56.11"])
def test_endpoint_refuses_a_network_address_naming_the_socket_instead(host):
    with pytest.raises(InvalidArgument, match="served on the node's unix socket only"):
        Endpoint.parse(host)


@pytest.mark.parametrize("host", ["http://x", "unix://relative", "192.168.56.11"])
def test_endpoint_refuses_other_schemes(host):
    with pytest.raises(InvalidArgument, match="invalid VXSWARM_HOST"):
        Endpoint.parse(host)


def test_network_flag_long_form_carries_aliases():
    assert parse_network_flag("webnet") == {"target": "webnet", "aliases": []}
    assert parse_network_flag("name=webnet,alias=db,alias=x") == {
        "target": "webnet",
        "aliases": ["db", "x"],
    }
    with pytest.raises(click.BadParameter, match="invalid field 'foo=1'"):
        parse_network_flag("name=webnet,foo=1")


def _task(tid, slot, created, state="running", desired="running", err=""):
    return {
        "id": tid * 25,
        "service_name": "web",
        "slot": slot,
        "created_at": created,
        "image": "whoami",
        "node_id": "n1",
        "desired_state": desired,
        "status": {"state": state, "timestamp": 100.0, "err": err},
    }


def test_task_rows_show_history_under_the_current_task_of_a_slot():
    rows = task_rows(
        [
            _task("a", 1, 10, "failed", "shutdown", "task: non-zero exit (1)"),
            _task("b", 1, 20),
            _task("c", 2, 15),
        ],
        {"n1": "worker1"},
        now=105.0,
    )
    assert [r["Name"] for r in rows] == ["web.1", " \\_ web.1", "web.2"]
    assert [rows[0][k] for k in ("Node", "DesiredState", "CurrentState")] == [
        "worker1",
        "Running",
        "Running 5 seconds ago",
    ]
    assert [rows[1][k] for k in ("DesiredState", "CurrentState", "Error")] == [
        "Shutdown",
        "Failed 5 seconds ago",
        '"task: non-zero exit (1)"',
    ]
