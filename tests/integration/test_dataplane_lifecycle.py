"""Task lifecycle on real processes: exits, stops, restarts of the agent, wipe, failures."""

from __future__ import annotations

import os
import signal

import pytest

from netagent.agent.dataplane import wipe_node
from netagent.contract.desired import TaskState
from netagent.contract.errors import InvalidArgument
from netagent.kernel import iptables, netns
from netagent.kernel.naming import GW_BRIDGE
from netagent.network.gwbridge import GW_MAC
from netagent.tasks import spawn
from tests.integration.conftest import links_in, run_in, run_netns, wait_for

pytestmark = pytest.mark.root


def pid_gone(pid: int) -> bool:
    return (
        not os.path.exists(f"/proc/{pid}")
        or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"
    )


@pytest.mark.parametrize(
    ("cmd", "state", "code", "err"),
    [
        (("true",), TaskState.COMPLETE, 0, ""),
        (("sh", "-c", "exit 3"), TaskState.FAILED, 3, "task: non-zero exit (3)"),
        (("sh", "-c", "kill -KILL $$"), TaskState.FAILED, 137, "task: killed by signal 9"),
        (("/nonexistent/binary",), TaskState.FAILED, 127, "task: non-zero exit (127)"),
    ],
)
def test_task_exit_is_reported_with_its_code(dp_cluster, cmd, state, code, err):
    c = dp_cluster
    task = c.task(1, cmd=cmd)
    c.apply({0: [task]}, only=0)
    final = c.wait_state(0, task.id, state)
    assert (final.exit_code, final.err) == (code, err)
    wait_for("on_status to deliver the final state", lambda: c.events[0][-1].state == state)
    states = [e.state for e in c.events[0] if e.task_id == task.id]
    assert states[:2] == [TaskState.PREPARING, TaskState.STARTING]
    assert [s.order for s in states] == sorted(s.order for s in states)
    # Swarm never restarts a task: applying again keeps the final state.
    c.apply({0: [task]}, only=0)
    assert c.status(0, task.id).state == state


def test_desired_shutdown_stops_the_process_with_sigterm_and_keeps_the_netns(dp_cluster):
    c = dp_cluster
    task = c.task(1)
    c.apply({0: [task]}, only=0)
    pid = c.status(0, task.id).pid
    (result,) = c.apply({0: [task.model_copy(update={"desired_state": "shutdown"})]}, only=0)
    assert [ch.action for ch in result.changes] == ["stop"]
    final = c.wait_state(0, task.id, TaskState.SHUTDOWN)
    assert final.exit_code == 128 + signal.SIGTERM and final.pid is None
    wait_for("the shim to be gone", lambda: pid_gone(pid))
    assert c.names[0].task_ns(task.name, task.id) in netns.list_netns()


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(dp_cluster):
    c = dp_cluster
    task = c.task(1, cmd=("sh", "-c", "trap '' TERM; sleep 1000"), grace=3.0)
    c.apply({0: [task]}, only=0)
    pid = c.status(0, task.id).pid
    wait_for("the workload to start", lambda: _children(pid))
    workload = _children(pid)[0]
    c.apply({0: [task.model_copy(update={"desired_state": "shutdown"})]}, only=0)
    # SIGTERM was forwarded and ignored: both are still there before the grace period ends.
    assert not pid_gone(pid) and not pid_gone(workload)
    final = c.wait_state(0, task.id, TaskState.SHUTDOWN, timeout=20)
    assert final.exit_code == 128 + signal.SIGKILL
    wait_for("the workload to be killed too", lambda: pid_gone(workload))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def test_close_and_adopt_keep_the_same_pids_and_namespaces(dp_cluster):
    c = dp_cluster
    tasks = [c.task(1), c.task(2)]
    c.apply({0: tasks}, only=0)
    before = {s.task_id: (s.pid, netns.inode(s.netns)) for s in c.dps[0].statuses()}
    c.dps[0].close()
    c.dps[0] = c.new_dataplane(0)
    c.dps[0].adopt()
    after = {s.task_id: (s.pid, netns.inode(s.netns)) for s in c.dps[0].statuses()}
    assert after == before
    assert {s.state for s in c.dps[0].statuses()} == {TaskState.RUNNING}
    # The adopted processes are not children of this process; exits are still seen.
    (again,) = c.apply({0: tasks}, only=0)
    assert again.changes == []
    stop = tasks[0].model_copy(update={"desired_state": "shutdown"})
    c.apply({0: [stop, tasks[1]]}, only=0)
    c.wait_state(0, tasks[0].id, TaskState.SHUTDOWN)
    assert c.status(0, tasks[1].id).pid == before[tasks[1].id][0]


def test_task_that_died_while_the_agent_was_down_is_reported_failed_on_adopt(dp_cluster):
    c = dp_cluster
    task = c.task(1)
    c.apply({0: [task]}, only=0)
    pid = c.status(0, task.id).pid
    c.dps[0].close()
    os.kill(pid, signal.SIGTERM)  # the shim forwards it: the workload dies of SIGTERM
    wait_for("the shim to exit", lambda: pid_gone(pid))
    c.dps[0] = c.new_dataplane(0)
    c.dps[0].adopt()
    status = c.status(0, task.id)
    assert (status.state, status.err) == (TaskState.FAILED, "task: killed by signal 15")


def test_wipe_node_leaves_no_namespace_link_rule_process_or_record(dp_cluster):
    c = dp_cluster
    tasks = [c.task(1), c.task(2)]
    c.apply({0: tasks, 1: [c.task(3)]})
    pids = [s.pid for s in c.dps[0].statuses()]
    node_ns = c.nodes[0].ns
    assert GW_BRIDGE in links_in(node_ns)
    c.dps[0].close()  # like a daemon that was SIGKILLed: kernel state and processes stay
    wipe_node(c.state_dir(0), c.names[0], node_ns)
    assert not [n for n in netns.list_netns() if n.startswith(c.names[0].prefix + "-")]
    assert links_in(node_ns) == {"lo", "eth0"}
    assert "vxswarm" not in iptables.save(node_ns)
    assert run_in(node_ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert all(pid_gone(p) for p in pids)
    assert not list((c.state_dir(0) / "dataplane").glob("**/*.json"))
    assert ":4789" not in run_in(node_ns, "ss", "-Hlun").stdout
    # The other node is untouched.
    assert c.status(1, c.dps[1].statuses()[0].task_id).state == TaskState.RUNNING
    wipe_node(c.state_dir(0), c.names[0], node_ns)  # idempotent


def test_wipe_node_refuses_records_naming_another_nodes_namespace(dp_cluster):
    c = dp_cluster
    c.apply({0: [c.task(1)]}, only=0)
    c.dps[0].close()
    with pytest.raises(InvalidArgument, match="not one of node prefix"):
        wipe_node(c.state_dir(0), c.names[1], c.nodes[0].ns)
    assert c.names[0].overlay_ns(c.VNI) in netns.list_netns()


def test_failed_build_undoes_its_completed_steps(dp_cluster):
    c = dp_cluster
    task = c.task(1)
    # A foreign eth1 already inside the task's netns makes the gateway veth fail (EEXIST)
    # after the overlay veth was made.
    task_ns = c.names[0].task_ns(task.name, task.id)
    netns.create(task_ns)
    try:
        run_in(task_ns, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "x1")
        (result,) = c.apply({0: [task]}, only=0)
        status = c.status(0, task.id)
        assert status.state == TaskState.FAILED and "File exists" in status.err
        assert result.errors == {task.id: status.err}
        assert f"vt{task.id[:8]}-0" not in links_in(c.names[0].overlay_ns(c.VNI))
        assert f"vg{task.id[:8]}" not in links_in(c.nodes[0].ns)
        assert links_in(task_ns) == {"lo", "eth1", "x1"}  # what was there before is kept
    finally:
        netns.remove(task_ns)


def test_unknown_image_is_rejected_before_any_kernel_object(dp_cluster):
    c = dp_cluster
    task = c.task(1, image="nosuch")
    (result,) = c.apply({0: [task]}, only=0)
    status = c.status(0, task.id)
    assert status.state == TaskState.REJECTED
    assert status.err == "workload: unknown image 'nosuch': expected 'host'"
    assert c.names[0].task_ns(task.name, task.id) not in netns.list_netns()


def test_invalid_desired_state_is_refused_before_touching_the_kernel(dp_cluster):
    c = dp_cluster
    good = c.task(1)
    bad = good.model_copy(
        update={"attachments": (good.attachments[0].model_copy(update={"network_id": "nope"}),)}
    )
    before = run_netns(c.run_id)
    with pytest.raises(InvalidArgument) as exc:
        c.dps[0].apply(c.desired(0, {0: [bad]}))
    assert str(exc.value) == "unknown network 'nope' in task web.1: expected one of net1"
    assert run_netns(c.run_id) == before and GW_BRIDGE not in links_in(c.nodes[0].ns)


def test_exec_target_refuses_a_task_that_is_not_running(dp_cluster):
    from netagent.contract.errors import Conflict, NotFound

    c = dp_cluster
    task = c.task(1, cmd=("true",))
    c.apply({0: [task]}, only=0)
    c.wait_state(0, task.id, TaskState.COMPLETE)
    with pytest.raises(Conflict, match="is not running"):
        c.dps[0].exec_target(task.id)
    with pytest.raises(NotFound, match="no such task"):
        c.dps[0].exec_target("0" * 25)


def test_teardown_stops_processes_and_removes_everything(dp_cluster):
    c = dp_cluster
    c.apply({0: [c.task(1), c.task(2)]}, only=0)
    pids = [s.pid for s in c.dps[0].statuses()]
    c.dps[0].teardown()
    assert all(pid_gone(p) for p in pids)
    assert not [n for n in netns.list_netns() if n.startswith(c.names[0].prefix + "-")]
    assert links_in(c.nodes[0].ns) == {"lo", "eth0"}
    assert "vxswarm" not in iptables.save(c.nodes[0].ns)
    shutdown = [e for e in c.events[0] if e.state == TaskState.SHUTDOWN]
    assert len(shutdown) == 2


def test_recorded_pid_is_not_signalled_when_its_start_time_differs(dp_cluster):
    c = dp_cluster
    task = c.task(1)
    c.apply({0: [task]}, only=0)
    pid = c.status(0, task.id).pid
    started = spawn.start_time(pid)
    assert not spawn.signal_recorded(pid, started + 1, signal.SIGKILL)
    assert not pid_gone(pid)
    assert spawn.signal_recorded(pid, started, 0)


AGENT_SCRIPT = """
import json, sys
from pathlib import Path
from netagent.agent.dataplane import DataPlane
from netagent.contract.desired import NodeDesiredState
from netagent.kernel.naming import Names
from tests.integration.conftest import StandInWorkloads

prefix, state_dir, ip, desired = sys.argv[1:5]
dp = DataPlane(Names(prefix), Path(state_dir), ip, workloads=StandInWorkloads())
result = dp.apply(NodeDesiredState.model_validate_json(desired))
print(json.dumps({"errors": result.errors, "pids": [s.pid for s in dp.statuses()]}))
dp.close()  # like a daemon killed now: tasks and kernel state stay
"""


def test_agent_running_inside_its_node_ns_is_wiped_from_outside(dp_cluster):
    """The lab's way: the daemon runs in the node ns (node_ns=None) via nsenter --net,
    and `lab stop` wipes it from the root ns, naming the node ns."""
    import json
    import subprocess
    import sys

    c = dp_cluster
    node = c.nodes[0]
    c.dps[0].close()  # this test's agent is the subprocess below
    desired = c.desired(0, {0: [c.task(1), c.task(2)]})
    state_dir = c.state_dir(0) / "inside"
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{node.ns}", sys.executable, "-c", AGENT_SCRIPT,
         c.names[0].prefix, str(state_dir), str(node.ip), desired.model_dump_json()],
        capture_output=True, text=True, check=True, cwd=os.getcwd(),
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["errors"] == {} and len(report["pids"]) == 2
    assert {"vx_gwbridge", *(f"vg{t.id[:8]}" for t in desired.tasks)} <= links_in(node.ns)
    wipe_node(state_dir, c.names[0], node.ns)
    assert all(pid_gone(p) for p in report["pids"])
    assert not [n for n in netns.list_netns() if n.startswith(c.names[0].prefix + "-")]
    assert links_in(node.ns) == {"lo", "eth0"}
    assert "vxswarm" not in iptables.save(node.ns)


def test_apply_works_when_called_from_a_thread_running_an_event_loop(dp_cluster):
    """aiohttp handlers call into the data plane; pyroute2's sync API cannot run there."""
    import asyncio

    c = dp_cluster
    task = c.task(1)

    async def handler():
        c.dps[0].adopt()
        return c.dps[0].apply(c.desired(0, {0: [task]}))

    result = asyncio.run(handler())
    assert result.errors == {}
    assert c.status(0, task.id).state == TaskState.RUNNING


def _mac(ns: str, link: str) -> str:
    out = run_in(ns, "ip", "-o", "link", "show", link).stdout
    return out.split("link/ether ")[1].split()[0]


def test_the_gateway_bridge_keeps_a_mac_of_its_own_as_tasks_come_and_go(dp_cluster):
    """A bridge without a MAC of its own takes its lowest port's, so a task leaving
    could change it, and whoever cached the old one (the ingress sandbox's way back to
    the node, the tasks' default gateway) lost about 5 s of traffic (a chaos soak
    found every mesh connection of a node stalled at once on `service scale`)."""
    c = dp_cluster
    node_ns = c.nodes[0].ns
    first, second, third = c.task(1), c.task(2), c.task(3)
    c.apply({0: [first, second]}, only=0)
    assert _mac(node_ns, GW_BRIDGE) == GW_MAC
    c.apply({0: [second, third]}, only=0)  # a port leaves, another comes
    assert _mac(node_ns, GW_BRIDGE) == GW_MAC
