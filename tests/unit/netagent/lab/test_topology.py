"""The lab's pure description: names, addresses, roles, validation, the lab record."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from netagent.kernel.naming import Names
from netagent.lab import demo, record
from netagent.lab import verbs as lab
from netagent.lab.record import LabRecord
from netagent.lab.topology import MAX_NODES, Role, Topology, check_lab_name, lab_root

ROOT = Path("/var/lib/vxswarm/labs")


@pytest.mark.parametrize(
    ("nodes", "managers", "expected"),
    [
        (1, 1, [("manager1", "manager", "192.168.56.11")]),
        (
            3,
            1,
            [
                ("manager1", "manager", "192.168.56.11"),
                ("worker1", "worker", "192.168.56.12"),
                ("worker2", "worker", "192.168.56.13"),
            ],
        ),
        (
            5,
            3,
            [
                ("manager1", "manager", "192.168.56.11"),
                ("manager2", "manager", "192.168.56.12"),
                ("manager3", "manager", "192.168.56.13"),
                ("worker1", "worker", "192.168.56.14"),
                ("worker2", "worker", "192.168.56.15"),
            ],
        ),
        (
            2,
            2,
            [("manager1", "manager", "192.168.56.11"), ("manager2", "manager", "192.168.56.12")],
        ),
    ],
)
def test_nodes_are_named_and_addressed_in_creation_order(nodes, managers, expected):
    topo = Topology.build("lab", nodes, managers, ROOT)
    assert [(n.name, str(n.role), str(n.ip)) for n in topo.nodes] == expected
    assert topo.client.ip == IPv4Address("192.168.56.1")
    assert topo.client.role is Role.CLIENT


def test_defaults_are_three_nodes_one_manager():
    topo = Topology.build(root=ROOT)
    assert topo.name == "lab"
    assert [n.name for n in topo.nodes] == ["manager1", "worker1", "worker2"]


def test_namespaces_ports_and_paths_derive_from_lab_and_node():
    topo = Topology.build("blue", 2, 1, ROOT)
    worker = topo.node("worker1")
    assert topo.switch_netns == "vx-blue-switch"
    assert topo.client.netns == "vx-blue-client"
    assert worker.netns == "vx-blue-worker1"
    assert worker.netns_path == "/run/netns/vx-blue-worker1"
    assert worker.port == "worker1"
    assert str(worker.address) == "192.168.56.12/24"
    assert worker.mac == "02:56:c0:a8:38:0c"
    assert worker.state_dir == ROOT / "blue" / "worker1"
    assert worker.host_url == "unix:///var/lib/vxswarm/labs/blue/worker1/vxswarm.sock"
    assert topo.record_path == ROOT / "blue" / "lab.json"
    assert topo.all_netns == (
        "vx-blue-switch",
        "vx-blue-client",
        "vx-blue-manager1",
        "vx-blue-worker1",
    )


def test_node_namespace_is_a_valid_daemon_prefix_and_names_do_not_collide_across_labs():
    a = Topology.build("a", 3, 1, ROOT)
    b = Topology.build("b", 3, 1, ROOT)
    for node in a.nodes:
        assert Names(prefix=node.netns).overlay_ns(4097) == f"vx-a-{node.name}-ov-4097"
    assert not set(a.all_netns) & set(b.all_netns)


def test_largest_lab_name_and_node_count_fit_every_limit():
    topo = Topology.build("a" * 12, MAX_NODES, 1, ROOT)
    assert topo.nodes[-1].ip == IPv4Address("192.168.56.254")
    assert all(len(n.port) <= 15 for n in topo.machines)


@pytest.mark.parametrize("name", ["lab", "a", "my-lab-2", "x" * 12, "0lab"])
def test_valid_lab_names_are_accepted(name):
    assert check_lab_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "-lab", "lab-", "l_b", "a.b", "x" * 13, "la b"])
def test_invalid_lab_name_is_refused_with_clear_text(name):
    with pytest.raises(InvalidArgument) as err:
        Topology.build(name, 3, 1, ROOT)
    assert str(err.value) == (
        f"invalid lab name {name!r}: expected a lower-case DNS label (letters a-z, digits "
        "and '-', not starting or ending with '-'), at most 12 characters"
    )


@pytest.mark.parametrize("nodes", [0, -1, MAX_NODES + 1])
def test_node_count_out_of_range_is_refused(nodes):
    with pytest.raises(InvalidArgument) as err:
        Topology.build("lab", nodes, 1, ROOT)
    assert str(err.value) == f"invalid --nodes {nodes}: expected a number from 1 to {MAX_NODES}"


@pytest.mark.parametrize(("nodes", "managers"), [(3, 0), (3, 4), (1, 2)])
def test_manager_count_out_of_range_is_refused(nodes, managers):
    with pytest.raises(InvalidArgument) as err:
        Topology.build("lab", nodes, managers, ROOT)
    assert str(err.value) == (
        f"invalid --managers {managers}: expected a number from 1 to {nodes} (the number of nodes)"
    )


def test_unknown_node_error_lists_the_nodes():
    topo = Topology.build("lab", 3, 1, ROOT)
    with pytest.raises(NotFound) as err:
        topo.node("x")
    assert str(err.value) == (
        "no such node 'x' in lab 'lab': expected one of manager1, worker1, worker2"
    )


def test_client_is_a_node_only_where_allowed():
    topo = Topology.build("lab", 1, 1, ROOT)
    assert topo.node("client", allow_client=True) is topo.client
    with pytest.raises(NotFound):
        topo.node("client")


def test_root_too_long_for_a_unix_socket_is_refused():
    root = Path("/tmp/" + "d" * 100)
    with pytest.raises(InvalidArgument, match="is too long: the daemon socket"):
        Topology.build("lab", 1, 1, root)


def test_lab_root_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("VXSWARM_LAB_ROOT", raising=False)
    assert lab_root() == ROOT
    monkeypatch.setenv("VXSWARM_LAB_ROOT", "/tmp/x")
    assert lab_root() == Path("/tmp/x")
    monkeypatch.setenv("VXSWARM_LAB_ROOT", "relative")
    with pytest.raises(InvalidArgument, match="expected an absolute directory path"):
        lab_root()


def test_adding_workers_extends_a_lab_but_changing_managers_does_not():
    old = Topology.build("lab", 3, 1, ROOT)
    assert Topology.build("lab", 5, 1, ROOT).extends(old)
    assert Topology.build("lab", 3, 1, ROOT).extends(old)
    assert not Topology.build("lab", 2, 1, ROOT).extends(old)
    assert not Topology.build("lab", 3, 2, ROOT).extends(old)


def test_record_round_trips_and_rebuilds_the_topology(tmp_path):
    topo = Topology.build("rt", 3, 1, tmp_path)
    rec = LabRecord.for_topology(topo)
    rec.machine("worker1").daemon = record.ProcessRecord(pid=42, start_time=7)
    record.save(tmp_path, rec)
    loaded = record.load(tmp_path, "rt")
    assert loaded == rec
    assert loaded.topology(tmp_path) == topo
    assert [m.name for m in loaded.machines] == ["client", "manager1", "worker1", "worker2"]


def test_record_of_a_smaller_lab_refuses_fewer_nodes(tmp_path):
    rec = LabRecord.for_topology(Topology.build("rt", 3, 1, tmp_path))
    with pytest.raises(Conflict) as err:
        record.check_compatible(rec, Topology.build("rt", 2, 1, tmp_path))
    assert str(err.value) == (
        "lab 'rt' is up with 3 nodes (1 manager): expected --nodes >= 3 and --managers 1, "
        "or 'vxswarm lab down --name rt' first"
    )


def test_growing_a_record_adds_only_new_workers(tmp_path):
    rec = LabRecord.for_topology(Topology.build("rt", 2, 1, tmp_path))
    rec.machine("worker1").daemon = record.ProcessRecord(pid=42, start_time=7)
    rec.grow_to(Topology.build("rt", 4, 1, tmp_path))
    assert [m.name for m in rec.machines] == ["client", "manager1", "worker1", "worker2", "worker3"]
    assert rec.machine("worker1").daemon is not None
    assert rec.nodes == 4


def test_commands_need_no_name_with_one_lab_and_refuse_to_guess_with_several(tmp_path):
    assert record.resolve_name(None, tmp_path) == "lab"
    record.save(tmp_path, LabRecord.for_topology(Topology.build("red", 1, 1, tmp_path)))
    assert record.resolve_name(None, tmp_path) == "red"
    record.save(tmp_path, LabRecord.for_topology(Topology.build("blue", 1, 1, tmp_path)))
    with pytest.raises(InvalidArgument) as err:
        record.resolve_name(None, tmp_path)
    assert str(err.value) == "several labs are up (blue, red): expected --name with one of them"


def test_missing_lab_is_reported_with_the_labs_that_exist(tmp_path):
    with pytest.raises(NotFound, match="no lab is up"):
        record.require("nope", tmp_path)
    record.save(tmp_path, LabRecord.for_topology(Topology.build("red", 1, 1, tmp_path)))
    with pytest.raises(NotFound) as err:
        record.require("nope", tmp_path)
    assert str(err.value) == "no lab 'nope': expected one of red"


def test_env_prints_an_export_and_how_to_eval_it(tmp_path):
    record.save(tmp_path, LabRecord.for_topology(Topology.build("lab", 2, 1, tmp_path)))
    assert lab.env_lines("worker1", root=tmp_path) == [
        f"export VXSWARM_HOST=unix://{tmp_path}/lab/worker1/vxswarm.sock",
        "# Run this command to configure your shell:",
        '# eval "$(vxswarm lab env worker1)"',
    ]


def test_env_of_the_client_points_at_manager1_and_names_a_non_default_lab(tmp_path):
    record.save(tmp_path, LabRecord.for_topology(Topology.build("red", 2, 1, tmp_path)))
    lines = lab.env_lines("client", root=tmp_path)
    assert lines[0] == f"export VXSWARM_HOST=unix://{tmp_path}/red/manager1/vxswarm.sock"
    assert lines[2] == '# eval "$(vxswarm lab env --name red client)"'


def test_env_of_an_unknown_node_lists_every_machine(tmp_path):
    record.save(tmp_path, LabRecord.for_topology(Topology.build("lab", 2, 1, tmp_path)))
    with pytest.raises(NotFound) as err:
        lab.env_lines("worker9", root=tmp_path)
    assert str(err.value) == (
        "no such node 'worker9' in lab 'lab': expected one of client, manager1, worker1"
    )


def _task(slot: int, node: str, ip: str) -> dict:
    return {"slot": slot, "node_id": node, "attachments": [{"address": f"{ip}/24"}]}


def test_demo_pings_from_the_first_slot_to_a_task_on_another_node():
    tasks = [_task(2, "n1", "10.0.0.4"), _task(1, "n1", "10.0.0.3"), _task(3, "n2", "10.0.0.5")]
    assert demo._pick_ping_pair(tasks) == ("web.1", "10.0.0.5")


def test_demo_pings_another_slot_when_every_task_shares_one_node():
    tasks = [_task(1, "n1", "10.0.0.3"), _task(2, "n1", "10.0.0.4")]
    assert demo._pick_ping_pair(tasks) == ("web.1", "10.0.0.4")
