"""`vxswarm events` output and filters, as docker's."""

import json

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cli import filters
from orchestrator.cli.events import KEYS, event_line, formatted

MESSAGE = {
    "Type": "service",
    "Action": "update",
    "Actor": {
        "ID": "0a1cb41a53d4ae0783f075933",
        "Attributes": {"replicas.old": "1", "name": "web", "replicas.new": "3"},
    },
    "scope": "swarm",
    "time": 1796605143,
    "timeNano": 1796605143123456789,
}


def test_default_line_is_dockers_with_sorted_attributes():
    assert event_line(MESSAGE) == (
        "2026-12-07T00:59:03.123456789Z service update 0a1cb41a53d4ae0783f075933 "
        "(name=web, replicas.new=3, replicas.old=1)"
    )


def test_json_is_one_object_a_line_and_templates_see_dockers_fields():
    assert json.loads(formatted(MESSAGE, "json")) == MESSAGE
    assert "\n" not in formatted(MESSAGE, "json")
    assert (
        formatted(MESSAGE, "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
        == "service update web"
    )
    assert json.loads(formatted(MESSAGE, "{{json .}}"))["Actor"]["ID"] == MESSAGE["Actor"]["ID"]


def _message(kind: str, action: str, obj_id: str, name: str) -> dict:
    return {
        **MESSAGE,
        "Type": kind,
        "Action": action,
        "Actor": {"ID": obj_id, "Attributes": {"name": name}},
    }


EVENTS = [
    _message("service", "create", "aaa111", "web"),
    _message("task", "update", "bbb222", "web.1"),
    _message("network", "create", "ccc333", "webnet"),
    _message("node", "update", "ddd444", "worker1"),
]


@pytest.mark.parametrize(
    ("given", "ids"),
    [
        (["type=service", "type=node"], ["aaa111", "ddd444"]),
        (["event=create"], ["aaa111", "ccc333"]),
        (["type=task", "event=update"], ["bbb222"]),
        # docker's name filters match a prefix of any event's id or name.
        (["service=web"], ["aaa111", "bbb222", "ccc333"]),
        (["node=ddd"], ["ddd444"]),
        (["scope=local"], []),
    ],
)
def test_filters_match_as_dockers_do(given, ids):
    wanted = filters.parse(given, KEYS)
    assert [m["Actor"]["ID"] for m in wanted.apply(EVENTS)] == ids


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (
            "type=container",
            "Invalid filter 'type=container' (valid type values: service, node, network, task)",
        ),
        ("event=die", "Invalid filter 'event=die' (valid event values: create, update, remove)"),
        ("image=alpine", "Invalid filter 'image'"),
    ],
)
def test_unknown_filters_are_refused_naming_the_valid_ones(given, error):
    with pytest.raises(InvalidArgument, match=error.replace("(", r"\(").replace(")", r"\)")):
        filters.parse([given], KEYS)
