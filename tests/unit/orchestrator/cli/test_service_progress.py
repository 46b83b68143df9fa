"""`--detach=false` progress and `inspect --pretty`'s update sections (pure formatting)."""

from __future__ import annotations

from orchestrator.cli.progress import _slot_lines, converged
from orchestrator.cli.service_pretty import update_config_lines, update_status_lines
from orchestrator.cluster.objects import ServiceSpec, UpdateConfig


def service(replicas: int = 2, state: str | None = None) -> dict:
    spec = ServiceSpec(name="web", image="whoami", replicas=replicas).model_dump(mode="json")
    status = {"state": state, "started_at": 0, "message": "m"} if state else None
    return {"id": "s", "spec": spec, "update_status": status}


def task(slot: int, state: str, created: float = 1.0, desired: str = "running") -> dict:
    return {
        "slot": slot,
        "node_id": "n1",
        "created_at": created,
        "desired_state": desired,
        "status": {"state": state},
    }


def test_a_service_converges_when_every_slot_runs_and_no_update_is_in_progress():
    tasks = [task(1, "running"), task(2, "running")]
    assert converged(service(), tasks)
    assert not converged(service(state="updating"), tasks)
    assert not converged(service(), [task(1, "running"), task(2, "starting")])
    assert not converged(service(replicas=3), tasks)


def test_slot_lines_show_the_newest_task_meant_to_run():
    tasks = [task(1, "shutdown", 0.5, "shutdown"), task(1, "preparing", 2.0), task(2, "running")]
    lines = _slot_lines(service(), tasks, {})
    assert lines[0].startswith("1/2: preparing ")
    assert lines[1].startswith("2/2: running   [") and lines[1].endswith(">]")


def test_update_sections_follow_the_docker_layout():
    config = UpdateConfig(delay=10, order="start-first").model_dump(mode="json")
    assert update_config_lines(config, "update") == [
        "UpdateConfig:",
        " Parallelism:\t1",
        " Delay:\t\t10s",
        " On failure:\tpause",
        " Monitoring Period: 5s",
        " Max failure ratio: 0",
        " Update order:      start-first",
    ]
    status = {"state": "paused", "started_at": 0, "completed_at": 0, "message": "why"}
    lines = update_status_lines(status)
    assert lines[:2] == ["UpdateStatus:", " State:\t\tpaused"]
    assert lines[-1] == " Message:\twhy"
    assert update_status_lines(None) == []
