"""Resources through the manager: nodes report theirs in heartbeats, reservations are
placed against them, limits reach the node's desired state and roll the tasks."""

from netagent.contract.desired import Resources, TaskState
from orchestrator.cluster.objects import ServiceSpec
from orchestrator.cluster.resources_text import resources_key

GIB = 1 << 30
MACHINE = Resources(nano_cpus=2_000_000_000, memory_bytes=4 * GIB)


def _report_machines(swarm) -> None:
    for name in swarm.nodes:
        swarm.m.heartbeat(swarm.id(name), [], "", MACHINE)


def test_a_heartbeat_brings_the_nodes_cpus_and_memory(swarm):
    node = swarm.m.get_node("worker1")
    assert node.description.resources == Resources()  # nothing told yet
    swarm.m.heartbeat(swarm.id("worker1"), [], "", MACHINE)
    assert swarm.m.get_node("worker1").description.resources == MACHINE
    revision = swarm.m.revision
    swarm.m.heartbeat(swarm.id("worker1"), [], "", MACHINE)
    assert swarm.m.revision == revision  # the same again writes nothing


def test_reservations_place_what_fits_and_explain_the_rest(swarm):
    _report_machines(swarm)
    swarm.web(replicas=4, reservations=Resources(memory_bytes=3 * GIB))
    swarm.tick()
    tasks = sorted(swarm.current(), key=lambda t: t.slot)
    assert len({t.node_id for t in tasks if t.node_id}) == 3
    (pending,) = [t for t in tasks if t.status.state == TaskState.PENDING]
    assert pending.status.err == "no suitable node (insufficient resources on 3 nodes)"
    # A node with more memory (say its machine grew) takes it at the next tick.
    swarm.m.heartbeat(
        swarm.id("worker2"), [], "", MACHINE.model_copy(update={"memory_bytes": 8 * GIB})
    )
    swarm.tick()
    assert all(t.node_id for t in swarm.current())


def test_limits_reach_the_task_spec_and_a_change_rolls_the_tasks(swarm):
    _report_machines(swarm)
    limits = Resources(nano_cpus=500_000_000, memory_bytes=64 << 20)
    svc = swarm.web(replicas=1, limits=limits)
    swarm.tick()
    (task,) = swarm.current()
    (assigned,) = swarm.m.desired_state(task.node_id).tasks
    assert assigned.spec.limits == limits
    spec = svc.spec.model_copy(update={"limits": Resources(memory_bytes=128 << 20)})
    swarm.m.update_service(svc.id, ServiceSpec.model_validate(spec.model_dump()))
    assert swarm.m.get_service(svc.id).task_key() != svc.task_key()


def test_a_service_without_resources_keeps_its_task_key():
    """Keys of services made before resources existed must not change (every task of
    every service would roll after an upgrade)."""
    assert resources_key(Resources(), Resources()) == {}
    set_ = resources_key(Resources(), Resources(memory_bytes=1))
    assert set_ == {"resources": [Resources().model_dump(), {"nano_cpus": 0, "memory_bytes": 1}]}
