"""Pure logic of the data plane: validation, exit classification, allocation, records."""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.contract.desired import RemoteEndpoint, TaskState
from netagent.contract.errors import Conflict, InvalidArgument
from netagent.kernel import iptables, netns
from netagent.ledger.changes import ApplyResult, Change
from netagent.ledger.inventory import Records, SandboxRecord, TaskRecord, read_exit_file
from netagent.network import gwbridge
from netagent.network.checks import check_desired
from netagent.tasks import shim, spawn
from netagent.tasks.lifecycle import REMOVE, RUNNING, SHUTDOWN, classify_exit, to_status
from tests import factories

NET = factories.network()


def task(tid="a" * 25, name="web.1", ip="10.0.0.3", net="n1", mac=None, grace=10.0):
    """web.1 of service "s" running `true` on the host image (names here may be invalid)."""
    return factories.task(
        tid, name, service_name="web", slot=1, image="host", command=("true",), grace=grace,
        ip=ip, network_id=net, mac=mac,
    )  # fmt: skip


def desired(networks=(NET,), tasks=()):
    return factories.state("x", networks=networks, tasks=tasks)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            desired(tasks=(task(net="zz"),)),
            "unknown network 'zz' in task web.1: expected one of n1",
        ),
        (
            desired(tasks=(task(ip="10.0.1.3"),)),
            "invalid address 10.0.1.3/24 for task web.1 on network 'webnet': expected a host "
            "address in 10.0.0.0/24 other than the gateway 10.0.0.1",
        ),
        (
            desired(tasks=(task(ip="10.0.0.1"),)),
            "invalid address 10.0.0.1/24 for task web.1 on network 'webnet': expected a host "
            "address in 10.0.0.0/24 other than the gateway 10.0.0.1",
        ),
        (
            desired(tasks=(task(mac="02:42:0A:00:00:03"),)),
            "invalid MAC '02:42:0A:00:00:03' for task web.1 on network 'webnet': expected six "
            "lower-case hex pairs like 02:42:0a:00:00:03",
        ),
        (
            desired(tasks=(task(tid="ABC"),)),
            "invalid task id 'ABC': expected 12-64 lower-case letters or digits",
        ),
        (
            desired(tasks=(task(name="web/1"),)),
            "invalid task name 'web/1': expected letters, digits, '.', '_' or '-'",
        ),
        (
            desired(tasks=(task(), task(tid="b" * 25, name="web.2"))),
            "address 10.0.0.3 is given to tasks web.1 and web.2: expected one task per address",
        ),
        (
            desired(tasks=(task(), task())),
            f"duplicate task id {'a' * 25!r}: expected each task once",
        ),
        (
            desired(networks=(NET, NET.model_copy(update={"id": "n2", "name": "other"}))),
            "duplicate vni 4097 (networks 'webnet' and 'other'): expected one network per vni",
        ),
        (
            desired(networks=(NET.model_copy(update={"gateway": IPv4Address("10.9.0.1")}),)),
            "invalid gateway 10.9.0.1 for network 'webnet': expected an address inside 10.0.0.0/24",
        ),
        (
            desired(
                networks=(
                    NET.model_copy(
                        update={
                            "peers": (
                                RemoteEndpoint(
                                    ip="10.1.0.5", mac="02:42:0a:01:00:05", vtep="192.168.56.12"
                                ),
                            )
                        }
                    ),
                )
            ),
            "invalid peer address 10.1.0.5 on network 'webnet': expected an address inside "
            "10.0.0.0/24",
        ),
    ],
)
def test_bad_desired_state_is_refused_with_one_line_naming_the_value(state, message):
    with pytest.raises(InvalidArgument) as exc:
        check_desired(state)
    assert str(exc.value) == message


def test_good_desired_state_passes():
    check_desired(desired(tasks=(task(), task(tid="b" * 25, name="web.2", ip="10.0.0.4"))))


@pytest.mark.parametrize(
    ("intent", "code", "sig", "state", "exit_code", "err"),
    [
        (RUNNING, 0, None, TaskState.COMPLETE, 0, ""),
        (RUNNING, 2, None, TaskState.FAILED, 2, "task: non-zero exit (2)"),
        (RUNNING, None, 9, TaskState.FAILED, 137, "task: killed by signal 9"),
        (RUNNING, None, None, TaskState.FAILED, None, "task: exited without status (shim killed)"),
        (SHUTDOWN, None, 15, TaskState.SHUTDOWN, 143, ""),
        (REMOVE, 0, None, TaskState.SHUTDOWN, 0, ""),
    ],
)
def test_exit_is_classified_by_intent_and_status(intent, code, sig, state, exit_code, err):
    rec = TaskRecord(task_id="t" * 25, task_name="web.1", netns="vx-t-web.1-x", intent=intent)
    classify_exit(rec, code, sig)
    assert (rec.state, rec.exit_code, rec.err) == (state, exit_code, err)
    status = to_status(rec)
    assert status.pid is None and status.state == state


def test_gateway_addresses_are_the_lowest_free_after_the_gateway():
    assert gwbridge.allocate([]) == IPv4Interface("172.18.0.2/16")
    used = [IPv4Interface("172.18.0.2/16"), None, IPv4Interface("172.18.0.4/16")]
    assert gwbridge.allocate(used) == IPv4Interface("172.18.0.3/16")


def test_full_gateway_subnet_is_a_conflict():
    used = [IPv4Interface(f"{h}/16") for h in gwbridge.GW_SUBNET.hosts()]
    with pytest.raises(Conflict, match="172.18.0.0/16 is full"):
        gwbridge.allocate(used)


def test_nat_rule_carries_a_vxswarm_comment():
    rule = gwbridge.nat_rule()
    assert rule[:5] == ["-s", "172.18.0.0/16", "!", "-o", "vx_gwbridge"]
    assert rule[rule.index("--comment") + 1].startswith("vxswarm: ")
    assert rule[-2:] == ["-j", "MASQUERADE"]


def test_iptables_refuses_an_unknown_table_before_running_anything():
    with pytest.raises(InvalidArgument, match="invalid iptables table 'natt'"):
        iptables.rule_exists(None, "natt", "POSTROUTING", ["-j", "ACCEPT"])


@pytest.mark.parametrize("name", ["", "..", "a/b", "-x", "a b"])
def test_bad_namespace_names_are_refused(name):
    with pytest.raises(InvalidArgument, match="invalid namespace name"):
        netns.ns_path(name)


def test_records_round_trip_and_drop_everything(tmp_path):
    records = Records(tmp_path)
    node = records.load_node()
    node.sandboxes[4097] = SandboxRecord(network_id="n", vni=4097, netns="vx-ov-4097",
                                         vxlan="vx-4097")  # fmt: skip
    node.nat_rule = gwbridge.nat_rule()
    records.save_node(node)
    rec = TaskRecord(task_id="t" * 25, task_name="web.1", netns="vx-t-web.1-t",
                     gw_address="172.18.0.2/16", pid=12, start_time=34)  # fmt: skip
    records.save_task(rec)
    records.log_file(rec.task_id).write_text("log")
    assert records.load_node() == node
    assert records.load_tasks() == {rec.task_id: rec}
    records.drop_all()
    assert not (tmp_path / "dataplane").exists()


def test_exit_file_that_is_missing_or_garbled_reads_as_unknown(tmp_path):
    assert read_exit_file(tmp_path / "nope") == (None, None)
    (tmp_path / "bad").write_text("{not json")
    assert read_exit_file(tmp_path / "bad") == (None, None)
    (tmp_path / "ok").write_text('{"exit_code": null, "signal": 15}')
    assert read_exit_file(tmp_path / "ok") == (None, 15)


def test_own_start_time_identifies_this_process_and_not_another_start():
    started = spawn.start_time(os.getpid())
    assert started is not None and spawn.is_same(os.getpid(), started)
    assert spawn.alive(os.getpid(), started)
    assert not spawn.is_same(os.getpid(), started + 1)
    assert spawn.start_time(2**22 + 7) is None  # beyond pid_max


def test_shim_takes_the_command_after_double_dash():
    args = shim.parse(["--hostname", "abc", "--exit-file", "/x", "--", "sh", "-c", "x"])
    assert (args.hostname, args.exit_file, args.command) == ("abc", "/x", ["sh", "-c", "x"])
    with pytest.raises(SystemExit):
        shim.parse(["--hostname", "abc", "--exit-file", "/x"])


def test_apply_result_lists_changes_with_reasons():
    result = ApplyResult(3, [Change("add", "fdb 02:42:0a:00:00:05 dst 192.168.56.12 on vx-4097",
                                    "new peer")])  # fmt: skip
    result.errors["t1"] = "boom"
    assert str(result) == (
        "apply v3: 1 change(s)\n"
        "  add fdb 02:42:0a:00:00:05 dst 192.168.56.12 on vx-4097: new peer\n"
        "  error t1: boom"
    )
    assert result.touching("02:42:0a:00:00:05") and not result.touching("02:42:0a:00:00:06")


def test_a_forgotten_task_keeps_its_log_among_the_last_kept_logs(tmp_path, monkeypatch):
    monkeypatch.setattr("netagent.ledger.inventory.KEPT_LOGS", 2)
    records = Records(tmp_path)
    records.ensure_dirs()
    ids = [f"{i}" * 25 for i in range(4)]
    for n, task_id in enumerate(ids):
        records.save_task(TaskRecord(task_id=task_id, task_name=f"web.{n}", netns="x"))
        records.log_file(task_id).write_text("got SIGTERM")
        os.utime(records.log_file(task_id), (n, n))
    records.drop_task(ids[0])
    assert records.log_file(ids[0]).read_text() == "got SIGTERM"
    for task_id in ids[1:]:
        records.drop_task(task_id)
    assert [records.log_file(t).exists() for t in ids] == [False, False, True, True]
    assert records.load_tasks() == {}
