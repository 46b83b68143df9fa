"""The Manager facade end to end in a temporary state dir, with an explicit clock."""

from ipaddress import IPv4Address

import pytest
from pydantic import ValidationError

from netagent.contract.desired import DesiredTaskState, TaskState, TaskStatus
from netagent.contract.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from orchestrator.ca.node_certs import cert_info, check_chain, make_csr, new_key
from orchestrator.cluster.objects import (
    NetworkAttachmentSpec,
    NetworkSpec,
    Node,
    NodeRole,
    NodeStatus,
    ServiceSpec,
)
from orchestrator.dispatch.assignments import digest
from orchestrator.manager import Manager
from orchestrator.ops import membership
from orchestrator.ops.inputs import one_line
from orchestrator.reconcile.reconciler import HISTORY_LIMIT
from tests.factories import csr
from tests.unit.orchestrator.harness import PERIOD

# -- init, open, join -------------------------------------------------------------------------


def test_init_makes_a_ready_manager(swarm):
    node = swarm.m.get_node("manager1")
    assert node.role == NodeRole.MANAGER
    assert node.manager_status is None  # filled by the daemon in API answers only
    assert node.status == NodeStatus.READY
    assert swarm.seat.store.get("node", node.id, Node) is not None


def test_init_refuses_a_store_that_already_holds_a_swarm(swarm):
    founding = membership.founding_objects(
        hostname="x", addr=IPv4Address("1.2.3.4"), heartbeat_period=5, engine_version="", now=1
    )
    with pytest.raises(Conflict, match="already part of a swarm"):
        Manager.init(swarm.seat.store, founding)
    assert [n.hostname for n in swarm.m.list_nodes()] == ["manager1", "worker1", "worker2"]


def test_open_of_an_empty_store_is_none(seat):
    assert Manager.open(seat.store) is None


def test_join_gives_the_token_role(swarm):
    node, _ = swarm.m.join(
        swarm.m.join_token(NodeRole.MANAGER),
        hostname="manager2",
        addr=IPv4Address("192.168.56.20"),
        engine_version="0.1.0",
        csr=csr(),
    )
    assert node.role == NodeRole.MANAGER
    assert swarm.m.get_node("worker1").role == NodeRole.WORKER


def test_join_with_a_rotated_token_is_refused_and_adds_nothing(swarm):
    old = swarm.m.join_token(NodeRole.WORKER)
    new = swarm.m.rotate_join_token(NodeRole.WORKER)
    assert new != old
    with pytest.raises(PermissionDenied, match="it was rotated"):
        swarm.m.join(
            old, hostname="w9", addr=IPv4Address("192.168.56.30"), engine_version="", csr=csr()
        )
    assert len(swarm.m.list_nodes()) == 3


def test_join_refuses_a_bad_hostname_before_the_token(swarm):
    with pytest.raises(InvalidArgument, match="invalid hostname 'bad name'"):
        swarm.m.join(
            "x", hostname="bad name", addr=IPv4Address("1.2.3.4"), engine_version="", csr=csr()
        )


def test_rejoin_from_same_host_and_address_replaces_the_old_entry(swarm):
    old = swarm.id("worker1")
    node, _ = swarm.m.join(
        swarm.m.join_token(NodeRole.WORKER),
        hostname="worker1",
        addr=IPv4Address("192.168.56.12"),
        engine_version="0.1.0",
        csr=csr(),
    )
    assert node.id != old
    assert [n.id for n in swarm.m.list_nodes() if n.hostname == "worker1"] == [node.id]


def test_node_lookup_by_hostname_prefix_and_missing(swarm):
    nid = swarm.id("worker2")
    assert swarm.m.get_node(nid[:8]).id == nid
    assert swarm.m.get_node("worker2").id == nid
    with pytest.raises(NotFound, match="^node nosuch not found$"):
        swarm.m.get_node("nosuch")


def test_join_hands_out_a_certificate_naming_the_node_its_role_and_the_swarm(swarm):
    info = cert_info(swarm.certs["worker1"])
    assert (info.node_id, info.role, info.cluster_id) == (
        swarm.id("worker1"),
        NodeRole.WORKER,
        swarm.m.cluster.id,
    )
    assert cert_info(swarm.certs["manager1"]).role == NodeRole.MANAGER
    # Signed by the swarm's root, the one joiners pin by the digest in the tokens.
    check_chain(swarm.certs["worker1"], swarm.m.ca_bundle(), now=info.not_before)


# -- networks and services ---------------------------------------------------------------------


def test_duplicate_or_overlapping_network_is_refused(swarm):
    with pytest.raises(Conflict, match="^network with name webnet already exists$"):
        swarm.m.create_network(NetworkSpec(name="webnet"))
    with pytest.raises(Conflict, match="overlaps subnet 10.0.0.0/24 of network webnet"):
        swarm.m.create_network(NetworkSpec(name="other", subnet="10.0.0.0/16"))
    second = swarm.m.create_network(NetworkSpec(name="second"))
    assert (second.vni, str(second.subnet), str(second.gateway)) == (
        4098,
        "10.0.1.0/24",
        "10.0.1.1",
    )


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            {"image": "whoami", "networks": [NetworkAttachmentSpec(target="foo")]},
            NotFound,
            "^network foo not found$",
        ),
        ({"image": "redis"}, InvalidArgument, "unknown image 'redis'"),
        ({"image": "whoami", "replicas": -1}, InvalidArgument, "invalid replicas -1"),
    ],
)
def test_bad_service_is_refused_and_nothing_is_stored(swarm, spec, error, message):
    before = swarm.m.revision
    with pytest.raises(error, match=message):
        swarm.m.create_service(ServiceSpec.model_construct(name="web", **_defaults(spec)))
    assert swarm.m.revision == before
    assert swarm.m.list_services() == []


def _defaults(spec: dict) -> dict:
    base = ServiceSpec(name="x", image="whoami").model_dump()
    base.pop("name")
    base.update(spec)
    return base


def test_duplicate_service_name_is_refused(swarm):
    swarm.web()
    with pytest.raises(Conflict, match="^service web already exists$"):
        swarm.web()


def test_ticks_assign_three_tasks_spread_over_three_nodes(swarm):
    service = swarm.web(3)
    # As in the Swarm articles: the VIP is allocated first, then the tasks.
    assert [str(v) for v in service.vips.values()] == ["10.0.0.2/24"]
    assert swarm.tick() is True
    tasks = swarm.current()
    assert [t.name for t in tasks] == ["web.1", "web.2", "web.3"]
    assert {t.status.state for t in tasks} == {TaskState.ASSIGNED}
    assert swarm.placement() == {1: "manager1", 2: "worker1", 3: "worker2"}
    assert [str(t.attachments[0].address) for t in tasks] == [
        "10.0.0.3/24",
        "10.0.0.4/24",
        "10.0.0.5/24",
    ]
    assert swarm.tick() is False  # nothing left to do writes nothing


def test_running_reports_become_the_running_count(swarm):
    swarm.web(3)
    swarm.tick()
    assert swarm.m.list_services()[0][1] == 0
    swarm.run_all()
    assert swarm.m.list_services()[0][1] == 3
    assert swarm.m.get_task("web.2").status.state == TaskState.RUNNING


def test_status_never_moves_back_from_terminal_and_unknown_ids_are_ignored(swarm):
    swarm.web(1)
    swarm.tick()
    t = swarm.current()[0]
    host = swarm.m.get_node(t.node_id).hostname
    swarm.report(host, TaskState.FAILED)
    swarm.m.heartbeat(
        t.node_id,
        [
            TaskStatus(task_id=t.id, state=TaskState.RUNNING),
            TaskStatus(task_id="unknown", state=TaskState.RUNNING),
        ],
    )
    assert swarm.m.get_task(t.id).status.state == TaskState.FAILED


def test_a_down_node_has_its_tasks_replaced_at_once_and_stopped_when_back(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    lost = swarm.m.get_task("web.3")
    assert swarm.placement()[3] == "worker2"
    swarm.advance(3 * PERIOD - 1)
    swarm.report("manager1")
    swarm.report("worker1")
    swarm.advance(2)  # worker2 silent for more than 3 periods
    swarm.tick()
    w2 = swarm.m.get_node("worker2")
    assert (w2.status, w2.status_message) == (NodeStatus.DOWN, "heartbeat failure")
    assert swarm.m.get_task(lost.id).desired_state == DesiredTaskState.SHUTDOWN
    replacement = swarm.m.get_task("web.3")
    assert replacement.id != lost.id
    assert swarm.placement()[3] in {"manager1", "worker1"}
    # Peers on the DOWN node are no longer anyone's FDB entries.
    peers = swarm.m.desired_state(swarm.id("worker1")).networks[0].peers
    assert lost.id not in {p.task_id for p in peers}

    # worker2 comes back: READY again, told to stop the replaced task.
    swarm.report("worker2")
    assert swarm.m.get_node("worker2").status == NodeStatus.READY
    back = swarm.m.desired_state(swarm.id("worker2")).tasks
    assert [(t.id, t.desired_state) for t in back] == [(lost.id, DesiredTaskState.SHUTDOWN)]
    swarm.report("worker2", TaskState.SHUTDOWN)
    assert swarm.m.desired_state(swarm.id("worker2")).tasks == ()


def test_a_failed_task_is_replaced_after_the_restart_delay(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    failed = swarm.m.get_task("web.2")
    swarm.report("worker1", TaskState.FAILED, slot=2)
    swarm.tick()
    assert swarm.m.get_task(failed.id).desired_state == DesiredTaskState.SHUTDOWN
    assert [t.slot for t in swarm.current()] == [1, 3]
    swarm.advance(4.9)
    swarm.tick()
    assert [t.slot for t in swarm.current()] == [1, 3]
    swarm.advance(0.1)
    swarm.tick()
    new = swarm.m.get_task("web.2")
    assert new.id != failed.id
    assert new.status.state == TaskState.ASSIGNED
    assert [t.id for t in swarm.m.list_tasks(service="web") if t.slot == 2] == [new.id, failed.id]


def test_restart_delay_comes_from_the_service_spec(swarm):
    swarm.web(1, restart_delay=0.0)
    swarm.tick()
    swarm.run_all()
    host = swarm.placement()[1]
    swarm.report(host, TaskState.COMPLETE)
    swarm.tick()
    assert len(swarm.current()) == 1


def test_dead_history_is_capped_per_slot(swarm):
    swarm.web(1, restart_delay=0.0)
    swarm.tick()
    for _ in range(HISTORY_LIMIT + 3):
        swarm.run_all()
        swarm.report(swarm.placement()[1], TaskState.FAILED)
        swarm.tick()
    history = swarm.m.list_tasks(service="web")
    assert len([t for t in history if t.desired_state == DesiredTaskState.SHUTDOWN]) == (
        HISTORY_LIMIT
    )
    assert len(history) == HISTORY_LIMIT + 1


def test_scale_up_then_down_keeps_the_lowest_slots(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    swarm.m.scale("web", 6)
    swarm.tick()
    swarm.run_all()
    assert (
        sorted(swarm.placement().values()) == ["manager1"] * 2 + ["worker1"] * 2 + ["worker2"] * 2
    )
    assert swarm.m.list_services()[0][1] == 6
    swarm.m.scale("web", 2)
    swarm.tick()
    # 3..6 first leave DNS and the load balancers (draining), still running.
    assert [t.slot for t in swarm.current() if not t.draining_since] == [1, 2]
    swarm.run_all()  # every agent applied a state without them
    swarm.tick()
    assert [t.slot for t in swarm.current()] == [1, 2]
    assert len(swarm.m.list_tasks(service="web")) == 6  # 3..6 shutting down
    swarm.run_all()  # agents stop them
    swarm.tick()
    assert [t.slot for t in swarm.m.list_tasks(service="web")] == [1, 2]
    assert swarm.m.get_service("web").spec.replicas == 2


@pytest.mark.parametrize("replicas", [-2, 10_001, 1_000_000])
def test_scale_refuses_a_count_outside_the_limits_naming_them(swarm, replicas):
    swarm.web(1)
    with pytest.raises(InvalidArgument) as err:
        swarm.m.scale("web", replicas)
    assert str(err.value) == (
        f"invalid replicas {replicas}: expected an integer from 0 to 10000 "
        "(the most one service may have)"
    )
    assert swarm.m.get_service("web").spec.replicas == 1


def test_create_refuses_a_million_replicas_naming_the_limit(swarm):
    with pytest.raises(ValidationError) as err:
        ServiceSpec(name="big", image="whoami", replicas=1_000_000)
    assert one_line(err.value) == (
        "invalid replicas 1000000: expected an integer from 0 to 10000 "
        "(the most one service may have)"
    )


def test_a_big_service_fills_a_few_hundred_tasks_per_tick(swarm):
    swarm.web(600)
    counts = []
    for _ in range(3):
        swarm.tick()
        counts.append(len(swarm.m.list_tasks(service="web")))
    assert counts == [256, 512, 600]


def test_service_rm_deletes_the_service_now_and_its_tasks_once_stopped(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    swarm.m.remove_service("web")
    with pytest.raises(NotFound):
        swarm.m.get_service("web")
    swarm.tick()
    assert all(t.draining_since for t in swarm.m.list_tasks())
    swarm.run_all()
    swarm.tick()
    assert {t.desired_state for t in swarm.m.list_tasks()} == {DesiredTaskState.SHUTDOWN}
    swarm.settle()
    assert swarm.m.list_tasks() == []


def test_network_rm_is_refused_while_a_service_uses_it(swarm):
    swarm.web(1)
    with pytest.raises(Conflict) as err:
        swarm.m.remove_network("webnet")
    assert str(err.value) == "network webnet is in use by service web"
    swarm.tick()
    swarm.m.remove_service("web")
    with pytest.raises(Conflict, match="in use by task web.1"):
        swarm.m.remove_network("webnet")
    swarm.run_all()
    swarm.tick()
    swarm.settle()
    swarm.m.remove_network("webnet")
    assert [n.spec.name for n in swarm.m.list_networks()] == ["ingress"]


def test_addresses_come_back_once_tasks_are_deleted(swarm):
    swarm.web(2)
    swarm.tick()
    swarm.run_all()
    swarm.m.remove_service("web")
    swarm.tick()
    swarm.settle()
    assert swarm.m.list_tasks() == []
    service = swarm.web(1)
    swarm.tick()
    assert [str(v) for v in service.vips.values()] == ["10.0.0.2/24"]
    assert str(swarm.current()[0].attachments[0].address) == "10.0.0.3/24"


def test_no_eligible_node_leaves_tasks_pending_with_the_reason_then_places_them(swarm):
    swarm.advance(3 * PERIOD + 1)
    swarm.tick()  # every node silent: all DOWN
    swarm.web(2)
    swarm.tick()
    pending = swarm.current()
    assert {t.status.state for t in pending} == {TaskState.PENDING}
    assert pending[0].status.err == "no suitable node (3 nodes not available for new tasks)"
    assert pending[0].node_id is None
    swarm.report("worker1")
    swarm.tick()
    assert swarm.placement() == {1: "worker1", 2: "worker1"}


def test_leave_replaces_the_tasks_of_the_node_and_a_manager_needs_force(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    gone = swarm.m.get_task("web.3")
    swarm.m.leave(swarm.id("worker2"))
    swarm.tick()
    assert swarm.m.get_task(gone.id).status.state == TaskState.ORPHANED
    # Slot 3 goes to the lower hostname of the two nodes holding one task each.
    assert swarm.placement() == {1: "manager1", 2: "worker1", 3: "manager1"}
    with pytest.raises(Conflict, match="is a manager"):
        swarm.m.leave(swarm.id("manager1"))


def test_task_lookup_by_name_id_and_prefix(swarm):
    swarm.web(2)
    swarm.tick()
    t = swarm.m.get_task("web.1")
    assert swarm.m.get_task(t.id) == t
    assert swarm.m.get_task(t.id[:10]) == t
    with pytest.raises(NotFound):
        swarm.m.get_task("web.9")


def test_desired_state_digest_is_stable_and_follows_changes(swarm):
    swarm.web(3)
    swarm.tick()
    nid = swarm.id("worker1")
    first = swarm.m.desired_state(nid)
    assert digest(first) == digest(swarm.m.desired_state(nid))
    swarm.report("manager1")  # a heartbeat without news changes nothing
    assert digest(swarm.m.desired_state(nid)) == digest(first)
    swarm.m.scale("web", 6)
    swarm.tick()
    assert digest(swarm.m.desired_state(nid)) != digest(first)


def test_a_renewal_needs_the_certificates_key_and_a_node_still_in_the_swarm(swarm):
    cert = swarm.certs["worker1"]
    renewed = swarm.m.renew_certificate(cert, csr())
    assert cert_info(renewed).node_id == swarm.id("worker1")
    other_key_csr = make_csr(new_key())
    with pytest.raises(PermissionDenied, match="not signed by the certificate's key"):
        swarm.m.renew_certificate(cert, other_key_csr)
    swarm.m.leave(swarm.id("worker1"))
    with pytest.raises(PermissionDenied, match="is not part of this swarm"):
        swarm.m.renew_certificate(cert, csr())


def test_reopen_after_close_keeps_everything_and_gives_nodes_a_grace(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    before = (
        swarm.m.cluster,
        [n.id for n in swarm.m.list_nodes()],
        swarm.m.list_tasks(),
        swarm.m.revision,
    )
    swarm.advance(100)  # longer than 3 periods while the manager was away
    m = swarm.reopen()
    swarm.m = m
    assert m.cluster == before[0]
    assert [n.id for n in m.list_nodes()] == before[1]
    assert m.list_tasks() == before[2]
    assert m.revision == before[3]
    assert m.heartbeat(swarm.id("worker1"), []) == PERIOD
    swarm.tick()
    assert {n.status for n in m.list_nodes()} == {NodeStatus.READY}
    swarm.advance(3 * PERIOD + 1)
    swarm.report("manager1")
    swarm.report("worker1")
    swarm.tick()
    down = sorted(n.hostname for n in m.list_nodes() if n.status == NodeStatus.DOWN)
    assert down == ["worker2"]


def test_full_subnet_keeps_the_extra_task_new_with_the_reason(swarm):
    swarm.m.create_network(NetworkSpec(name="tiny", subnet="10.9.0.0/29"))
    swarm.m.create_service(
        ServiceSpec(
            name="many", image="whoami", replicas=5, networks=[NetworkAttachmentSpec(target="tiny")]
        )
    )
    swarm.tick()
    tasks = swarm.m.list_tasks(service="many")
    # 6 hosts in a /29: the gateway (.1), the VIP (.2) and 4 tasks.
    assert [t.status.state for t in tasks].count(TaskState.ASSIGNED) == 4
    (stuck,) = [t for t in tasks if t.status.state == TaskState.NEW]
    assert stuck.slot == 5
    assert stuck.status.err == "network tiny (10.9.0.0/29) has no free address left"
    swarm.m.scale("many", 4)
    swarm.tick()
    assert len(swarm.m.list_tasks(service="many")) == 4


def test_service_rm_deletes_unplaced_tasks_and_tasks_on_down_nodes_at_once(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.run_all()
    swarm.advance(3 * PERIOD - 1)
    swarm.report("manager1")
    swarm.report("worker1")
    swarm.advance(2)
    swarm.tick()  # worker2 DOWN; web.3 replaced
    swarm.m.remove_service("web")
    swarm.tick()
    left = swarm.m.list_tasks()
    # Only tasks on READY nodes that have not yet confirmed the stop remain.
    assert {swarm.m.get_node(t.node_id).hostname for t in left} <= {"manager1", "worker1"}
    assert all(t.draining_since or t.desired_state == DesiredTaskState.SHUTDOWN for t in left)
    swarm.settle()
    swarm.settle()
    assert swarm.m.list_tasks() == []


def test_heartbeat_of_a_removed_node_is_refused(swarm):
    nid = swarm.id("worker1")
    assert swarm.m.is_member(nid)
    swarm.m.leave(nid)
    assert not swarm.m.is_member(nid)
    with pytest.raises(PermissionDenied, match="is not part of this swarm"):
        swarm.m.heartbeat(nid, [])


def test_join_refuses_an_address_held_by_another_live_node(swarm):
    with pytest.raises(Conflict, match=r"^address 192.168.56.12 is already used by node worker1"):
        swarm.m.join(
            swarm.m.join_token(NodeRole.WORKER),
            hostname="imposter",
            addr=IPv4Address("192.168.56.12"),
            engine_version="",
            csr=csr(),
        )


# -- roles ------------------------------------------------------------------------------------


def test_promotion_and_demotion_change_the_stored_role(swarm):
    promoted = swarm.m.set_role("worker1", "manager", reachable={swarm.id("manager1")})
    assert promoted.role == NodeRole.MANAGER
    assert swarm.m.get_node("worker1").role == NodeRole.MANAGER
    both = {swarm.id("manager1"), swarm.id("worker1")}
    assert swarm.m.set_role("worker1", "worker", reachable=both).role == NodeRole.WORKER
    assert swarm.m.set_role("worker1", "worker", reachable=both).role == NodeRole.WORKER
    # Two changes, one no-op: a node that missed both still sees that it must follow.
    assert swarm.m.get_node("worker1").role_epoch == 2


def test_demoting_the_last_manager_is_refused_and_changes_nothing(swarm):
    with pytest.raises(Conflict, match="demoting manager1 is refused: it is the last manager"):
        swarm.m.set_role("manager1", "worker", reachable={swarm.id("manager1")})
    assert swarm.m.get_node("manager1").role == NodeRole.MANAGER


def test_a_manager_is_removed_only_when_down_and_quorum_holds(swarm):
    me, w1 = swarm.id("manager1"), swarm.id("worker1")
    swarm.m.set_role("worker1", "manager", reachable={me})
    with pytest.raises(Conflict, match="It must be demoted to worker before removal"):
        swarm.m.check_manager_removal("worker1", reachable={me, w1})
    swarm.advance(4 * PERIOD)
    swarm.report("manager1")
    swarm.report("worker2")
    swarm.tick()
    assert swarm.m.get_node("worker1").status == NodeStatus.DOWN
    assert swarm.m.check_manager_removal("worker1", reachable={me}).id == w1
    swarm.m.remove_node("worker1", force=True)
    assert "worker1" not in [n.hostname for n in swarm.m.list_nodes()]


def test_a_forced_new_cluster_keeps_one_manager_and_every_service(swarm):
    me = swarm.id("manager1")
    swarm.m.set_role("worker1", "manager", reachable={me})
    swarm.m.set_role("worker2", "manager", reachable={me})
    swarm.web(3)
    swarm.tick()
    assert sorted(swarm.m.keep_only_manager(me)) == ["worker1", "worker2"]
    roles = {n.hostname: (n.role, n.role_epoch) for n in swarm.m.list_nodes()}
    assert roles == {
        "manager1": ("manager", 0),
        "worker1": ("worker", 2),
        "worker2": ("worker", 2),
    }
    assert [s.spec.name for s, _ in swarm.m.list_services()] == ["web"]
