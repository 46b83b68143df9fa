"""`vxswarm events` on a real 3-node lab: the manager's etcd watch turned into docker's
event messages, live and replayed from the store's history."""

from __future__ import annotations

import json
import re
import time

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for
from orchestrator.etcd.client import EtcdClient
from orchestrator.etcd.member import CLIENT_SOCKET
from orchestrator.node.control import etcd_dir
from tests.integration.streams import Streaming

pytestmark = [pytest.mark.root, pytest.mark.lab]
#: docker's default line: time, type, action, id, (sorted attributes).
LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (?P<type>\w+) (?P<action>\w+) (?P<id>[0-9a-f]{25})"
    r"(?: \((?P<attrs>.*)\))?$"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def messages(stream: Streaming) -> list[dict]:
    return [json.loads(line) for line in list(stream.lines)]


def seen(stream: Streaming, kind: str, action: str, name: str, **attrs: str) -> bool:
    return any(
        m["Type"] == kind
        and m["Action"] == action
        and m["Actor"]["Attributes"].get("name") == name
        and all(m["Actor"]["Attributes"].get(k) == v for k, v in attrs.items())
        for m in messages(stream)
    )


def test_a_service_created_updated_and_removed_streams_live_as_service_events(lab):
    # --since now: what happens while the stream's watch is being set up is replayed,
    # then the watch goes on live, none missed or doubled (no sleep for it to be ready).
    since = f"{time.time():.6f}"
    args = ("events", "--since", since, "--filter", "type=service", "--format", "json")
    with Streaming(lab, *args) as stream:
        lab.run("service", "create", "--name", "live", "alpine", "sleep", "1000", check=True)
        lab.converge("live", 1)
        lab.run("service", "update", "--replicas", "2", "live", check=True)
        lab.run("service", "rm", "live", check=True)
        wait_for("the removal", lambda: seen(stream, "service", "remove", "live"))
        err = stream.stop()
    got = messages(stream)
    assert {m["Type"] for m in got} == {"service"}  # the filter kept tasks and nodes out
    assert all(m["scope"] == "swarm" and m["time"] == m["timeNano"] // 10**9 for m in got)
    ours = [m for m in got if m["Actor"]["Attributes"]["name"] == "live"]
    assert ours[0]["Action"] == "create" and ours[-1]["Action"] == "remove"
    assert len({m["Actor"]["ID"] for m in ours}) == 1
    assert [m["Action"] for m in ours].count("create") == 1  # none doubled
    assert seen(stream, "service", "update", "live", **{"replicas.old": "1", "replicas.new": "2"})
    times = [m["timeNano"] for m in ours]
    assert times == sorted(times)
    assert "Traceback" not in err


def test_task_events_show_each_state_change_of_a_service_s_tasks(lab):
    since = f"{time.time():.6f}"
    args = ("events", "--since", since, "--filter", "type=task", "--filter", "service=tasky")
    with Streaming(lab, *args, "--format", "json") as stream:
        with lab.service("tasky", "alpine", "sleep", "1000"):
            wait_for(
                "running",
                lambda: seen(stream, "task", "update", "tasky.1", **{"state.new": "running"}),
            )
        wait_for("removed", lambda: seen(stream, "task", "remove", "tasky.1"))
        stream.stop()
    got = messages(stream)
    assert {m["Type"] for m in got} == {"task"}
    assert {m["Actor"]["Attributes"]["service"] for m in got} == {"tasky"}
    nodes = lab.hostnames()  # node ids -> names: the events name the node
    assert {m["Actor"]["Attributes"].get("node") for m in got} <= set(nodes.values())
    actions = [m["Action"] for m in got]
    assert actions[0] == "create" and actions[-1] == "remove"
    assert seen(stream, "task", "update", "tasky.1", **{"desiredstate.new": "shutdown"})
    assert seen(stream, "task", "update", "tasky.1", **{"state.new": "shutdown"})


def test_since_replays_the_stores_history_and_until_ends_the_stream(lab: SwarmLab):
    before = time.time()
    lab.run("network", "create", "-d", "overlay", "pastnet", check=True)
    lab.run("service", "create", "--name", "past", "alpine", "sleep", "1000", check=True)
    lab.converge("past", 1)
    lab.run("service", "rm", "past", check=True)
    lab.run("network", "rm", "pastnet", check=True)
    after = time.time()
    # Ends on its own at --until: docker's default lines, from the store's history.
    res = lab.run("events", "--since", f"{before:.6f}", "--until", f"{after:.6f}", check=True)
    lines = [LINE_RE.match(ln) for ln in res.out.splitlines()]
    assert all(lines), res.out
    events = [
        (m["type"], m["action"], dict(a.split("=", 1) for a in m["attrs"].split(", ")))
        for m in lines
        if m
    ]
    named = [(t, a, attrs.get("name")) for t, a, attrs in events]
    assert named.index(("network", "create", "pastnet")) < named.index(
        ("service", "create", "past")
    )
    assert named.index(("service", "create", "past")) < named.index(("service", "remove", "past"))
    assert named.index(("service", "remove", "past")) < named.index(
        ("network", "remove", "pastnet")
    )
    assert ("task", "create", "past.1") in named
    # Nothing from before --since: the lab's own nodes and ingress were made earlier.
    assert not any(t == "node" and a == "create" for t, a, _ in named)
    assert ("network", "create", "ingress") not in named
    # A type filter on the replay.
    res = lab.run(
        "events",
        "--since",
        f"{before:.6f}",
        "--until",
        f"{after:.6f}",
        "--filter",
        "type=network",
        check=True,
    )
    assert [LINE_RE.match(ln)["action"] for ln in res.out.splitlines()] == ["create", "remove"]
    # A Go template over docker's message.
    fmt = "{{.Type}}/{{.Action}}/{{.Actor.Attributes.name}}"
    res = lab.run(
        "events",
        "--since",
        f"{before:.6f}",
        "--until",
        f"{after:.6f}",
        "--filter",
        "type=network",
        "--format",
        fmt,
        check=True,
    )
    assert res.out.splitlines() == ["network/create/pastnet", "network/remove/pastnet"]


def test_since_beyond_the_compacted_history_starts_at_the_oldest_kept_with_a_warning(lab):
    before = time.time()
    lab.run("service", "create", "--name", "gone", "alpine", "sleep", "1000", check=True)
    lab.converge("gone", 1)
    # Compact the manager's member up to now, as its auto-compaction would later.
    etcd = EtcdClient(etcd_dir(lab.root / lab.name / "manager1") / CLIENT_SOCKET)
    _, revision = etcd.range(b"/nothing")
    etcd.call("/v3/kv/compaction", {"revision": str(revision)})
    lab.run("service", "rm", "gone", check=True)
    res = lab.run("events", "--since", f"{before:.6f}", "--until", "0s", check=True)
    assert f"WARNING: events older than store revision {revision} are no longer kept" in res.err
    named = [(m["type"], m["action"], m["attrs"]) for m in map(LINE_RE.match, res.out.splitlines())]
    # The creation was compacted away; the removal after it is replayed.
    assert ("service", "remove", "name=gone") in named
    assert not any(t == "service" and a == "create" for t, a, _ in named)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--filter", "type=container"),
            "Invalid filter 'type=container' (valid type values: service, node, network, task)",
        ),
        (("--filter", "colour=red"), "Invalid filter 'colour'"),
        (("--since", "yesterday"), "invalid value 'yesterday' for --since"),
        (("--format", "{{.Type"), "template"),
    ],
)
def test_bad_filters_times_and_templates_are_refused_naming_them(lab, args, error):
    res = lab.run("events", *args, timeout=30)
    assert res.code != 0
    assert error in res.err
    assert res.out == ""
