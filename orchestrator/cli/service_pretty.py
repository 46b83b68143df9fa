"""`service inspect --pretty`: a service in the docker CLI's human layout."""

from __future__ import annotations

from typing import Any

from orchestrator.cli import file_flags
from orchestrator.cli.format import when
from orchestrator.cli.health_flags import healthcheck_lines
from orchestrator.cli.mount_flags import mount_lines
from orchestrator.cluster.resources_text import bytes_size, cpus_text
from orchestrator.ops.durations import format_duration


def restart_policy_lines(spec: dict) -> list[str]:
    lines = ["RestartPolicy:", f" Condition:\t{spec['restart_condition']}"]
    lines.append(f" Delay:\t\t{format_duration(spec['restart_delay'])}")
    if spec["restart_max_attempts"]:
        lines.append(f" Max Attempts:\t{spec['restart_max_attempts']}")
    if spec["restart_window"]:
        lines.append(f" Window:\t{format_duration(spec['restart_window'])}")
    return lines


def update_status_lines(status: dict[str, Any] | None) -> list[str]:
    if not status:
        return []
    lines = ["UpdateStatus:", f" State:\t\t{status['state']}"]
    lines.append(f" Started:\t{when(status['started_at'])}")
    if status.get("completed_at"):
        lines.append(f" Completed:\t{when(status['completed_at'])}")
    lines.append(f" Message:\t{status['message']}")
    return lines


def update_config_lines(config: dict[str, Any], kind: str) -> list[str]:
    """UpdateConfig / RollbackConfig as docker prints them (no delay line when 0)."""
    title = "UpdateConfig" if kind == "update" else "RollbackConfig"
    lines = [f"{title}:", f" Parallelism:\t{config['parallelism']}"]
    if config["delay"]:
        lines.append(f" Delay:\t\t{format_duration(config['delay'])}")
    lines.append(f" On failure:\t{config['failure_action']}")
    lines.append(f" Monitoring Period: {format_duration(config['monitor'])}")
    lines.append(f" Max failure ratio: {config['max_failure_ratio']:g}")
    order = "Update order" if kind == "update" else "Rollback order"
    lines.append(f" {order}:      {config['order']}")
    return lines


def resources_lines(spec: dict[str, Any]) -> list[str]:
    """Resources: Reservations then Limits, each CPU and Memory only when set (docker's
    layout); nothing at all without any."""
    lines = []
    for title, key in ((" Reservations:", "reservations"), (" Limits:", "limits")):
        amounts = spec.get(key) or {}
        cpus, memory = amounts.get("nano_cpus", 0), amounts.get("memory_bytes", 0)
        if cpus or memory:
            lines.append(title)
        if cpus:
            lines.append(f"  CPU:\t\t{cpus_text(cpus)}")
        if memory:
            lines.append(f"  Memory:\t{bytes_size(memory)}")
    return ["Resources:", *lines] if lines else []


def pretty_lines(s: dict[str, Any], nets: dict[str, str]) -> list[str]:
    spec = s["spec"]
    lines = ["", f"ID:\t\t{s['id']}", f"Name:\t\t{spec['name']}"]
    if spec["labels"]:
        lines.append("Labels:")
        lines += [f" {k}={v}" for k, v in sorted(spec["labels"].items())]
    if spec["mode"] == "global":
        lines.append("Service Mode:\tGlobal")
    else:
        lines += ["Service Mode:\tReplicated", f" Replicas:\t{spec['replicas']}"]
    lines += update_status_lines(s.get("update_status"))
    prefs = spec.get("placement_preferences") or []
    if spec["constraints"] or spec["max_replicas_per_node"] or prefs:
        lines.append("Placement:")
    if spec["constraints"]:
        lines.append(f" Constraints:\t{spec['constraints']}")
    if prefs:
        lines.append(f" Preferences:\t{prefs}")
    if spec["max_replicas_per_node"]:
        lines.append(f" Max Replicas Per Node:\t{spec['max_replicas_per_node']}")
    if spec.get("rebalance"):
        lines.append(" Rebalance:\ttrue")
    lines += update_config_lines(spec["update_config"], "update")
    lines += update_config_lines(spec["rollback_config"], "rollback")
    lines += restart_policy_lines(spec)
    lines += [f"Created at:\t{when(s['created_at'])}", f"Updated at:\t{when(s['updated_at'])}"]
    lines += ["ContainerSpec:", f" Image:\t\t{spec['image']}"]
    if spec["command"]:
        lines.append(f" Args:\t\t{' '.join(spec['command'])}")
    if spec["env"]:
        lines.append(f" Env:\t\t{' '.join(spec['env'])}")
    lines += mount_lines(spec.get("mounts", []))
    lines += file_flags.pretty_lines(spec)
    lines.append(f"StopGracePeriod: {format_duration(spec['stop_grace_period'])}")
    lines += resources_lines(spec)
    if s.get("network_ids"):
        lines.append(f"Networks:\t{' '.join(nets.get(n, n) for n in s['network_ids'])}")
    lines.append(f"Endpoint Mode:\t{spec['endpoint_mode']}")
    for nid, vip in s.get("vips", {}).items():
        lines.append(f" VIP:\t\t{vip} on {nets.get(nid, nid)}")
    if spec["ports"]:
        lines.append("Ports:")
        for p in spec["ports"]:
            lines += [
                f" PublishedPort = {p['published']}",
                f"  Protocol = {p['protocol']}",
                f"  TargetPort = {p['target']}",
                f"  PublishMode = {p['mode']}",
            ]
    lines += healthcheck_lines(spec)
    return lines
