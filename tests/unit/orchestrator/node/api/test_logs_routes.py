"""What `service logs` asks of which node, decided on a real Manager's store."""

import pytest
from pydantic import ValidationError

from netagent.contract.errors import NotFound
from orchestrator.node.api.logs_routes import AgentLogs, has_log, log_targets


def test_a_service_s_tasks_ended_ones_too_and_the_padding_of_its_replicas(swarm):
    swarm.web(replicas=12)
    swarm.tick()
    swarm.settle()
    service_id, tasks, width = log_targets(swarm.m, "web")
    assert service_id == swarm.m.get_service("web").id
    assert sorted(t.slot for t in tasks) == list(range(1, 13))
    assert width == 2  # web.1 is padded to line up with web.12
    assert all(has_log(t) for t in tasks)


def test_one_task_by_its_name_is_a_target_of_its_own(swarm):
    swarm.web(replicas=2)
    swarm.tick()
    service_id, tasks, width = log_targets(swarm.m, "web.2")
    assert service_id is None
    assert [t.name for t in tasks] == ["web.2"]
    assert width == 1


def test_a_task_not_yet_started_on_a_node_has_no_log_to_ask_for(swarm):
    swarm.web(replicas=1)
    swarm.tick()  # assigned to a node, not started there yet
    (task,) = swarm.current()
    assert task.node_id is not None
    assert not has_log(task)


def test_neither_a_service_nor_a_task_is_dockers_error(swarm):
    with pytest.raises(NotFound, match="^no such task or service: nosuch$"):
        log_targets(swarm.m, "nosuch")


@pytest.mark.parametrize("bad", ["../../etc/shadow", "ABC", "", "a" * 65])
def test_an_agent_takes_only_task_ids_since_they_name_its_files(bad):
    with pytest.raises(ValidationError):
        AgentLogs(task_ids=[bad])
