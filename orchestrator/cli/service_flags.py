"""The flags `service create` and `service update` share, and how an update's flags
change a spec.

As the docker CLI does, `service update` reads the current spec, applies its flags
and sends the whole new spec: the manager decides from the difference which tasks a
rolling update replaces. `apply_update` is that step, pure so it can be unit tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from orchestrator.cli.common import Duration

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: (flag suffix, UpdateConfig field, click type, help).
_CONFIG_FLAGS: list[tuple[str, str, Any, str]] = [
    ("parallelism", "parallelism", click.IntRange(min=0), "Tasks replaced at once (0 = all)"),
    ("delay", "delay", Duration(), "Delay between replacing tasks (ns|us|ms|s|m|h)"),
    ("monitor", "monitor", Duration(), "Time to watch each new task for failure"),
    (
        "max-failure-ratio",
        "max_failure_ratio",
        click.FloatRange(0, 1),
        "Failure rate to tolerate (0..1)",
    ),
    ("order", "order", click.Choice(["stop-first", "start-first"]), "Replacement order"),
]


def update_config_options(kind: str) -> Decorator:
    """--{kind}-parallelism, -delay, -failure-action, -monitor, -max-failure-ratio, -order.

    All default to None (keep the current value); kind is "update" or "rollback"."""
    actions = ["pause", "continue", "rollback"] if kind == "update" else ["pause", "continue"]

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for suffix, field, type_, help_ in reversed(_CONFIG_FLAGS):
            fn = click.option(
                f"--{kind}-{suffix}", f"{kind}_{field}", type=type_, help=f"{help_}."
            )(fn)
        return click.option(
            f"--{kind}-failure-action",
            f"{kind}_failure_action",
            type=click.Choice(actions),
            help=f"Action on {kind} failure.",
        )(fn)

    return wrap


def config_changes(kind: str, flags: dict[str, Any]) -> dict[str, Any]:
    """The UpdateConfig fields the --{kind}-* flags set."""
    fields = [field for _, field, _, _ in _CONFIG_FLAGS] + ["failure_action"]
    return {f: flags[f"{kind}_{f}"] for f in fields if flags.get(f"{kind}_{f}") is not None}


#: Update flags that set one spec field as they are: flag → field.
_PLAIN = {
    "image": "image",
    "replicas": "replicas",
    "stop_grace_period": "stop_grace_period",
    "replicas_max_per_node": "max_replicas_per_node",
    "endpoint_mode": "endpoint_mode",
    "rebalance": "rebalance",
    "restart_condition": "restart_condition",
    "restart_delay": "restart_delay",
    "restart_max_attempts": "restart_max_attempts",
    "restart_window": "restart_window",
}


def split_env(items: Iterable[str]) -> dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in items)}


def _merge_pairs(
    current: dict[str, str], add: Iterable[str] | None, remove: Iterable[str] | None
) -> dict[str, str]:
    """--X-rm KEY then --X-add KEY=VALUE, as docker applies them."""
    merged = dict(current)
    for key in remove or ():
        merged.pop(key.partition("=")[0], None)
    merged.update(split_env(add or ()))
    return merged


def apply_update(spec: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The spec `service update` sends: `spec` (the current one) with `flags` applied.

    `flags` holds the parsed values of update's options (None or empty: unchanged)."""
    new = dict(spec)
    for flag, field in _PLAIN.items():
        if flags.get(flag) is not None:
            new[field] = flags[flag]
    if flags.get("args") is not None:
        new["command"] = list(flags["args"])
    if flags.get("env_add") or flags.get("env_rm"):
        env = _merge_pairs(split_env(spec["env"]), flags.get("env_add"), flags.get("env_rm"))
        new["env"] = [f"{k}={v}" for k, v in env.items()]
    if flags.get("label_add") or flags.get("label_rm"):
        new["labels"] = _merge_pairs(spec["labels"], flags.get("label_add"), flags.get("label_rm"))
    for flag, field in (("constraint", "constraints"), ("placement_pref", "placement_preferences")):
        if flags.get(f"{flag}_add") or flags.get(f"{flag}_rm"):
            new[field] = _merge_list(
                spec[field], flags.get(f"{flag}_add") or (), flags.get(f"{flag}_rm") or ()
            )
    new["ports"] = _ports(spec["ports"], flags.get("publish_add") or (), flags.get("publish_rm"))
    new["networks"] = _networks(
        spec["networks"], flags.get("network_add") or (), flags.get("network_rm") or ()
    )
    for kind in ("update", "rollback"):
        changes = config_changes(kind, flags)
        if changes:
            new[f"{kind}_config"] = {**spec[f"{kind}_config"], **changes}
    if flags.get("force"):
        new["force_update"] = spec.get("force_update", 0) + 1
    return new


def _merge_list(current: list[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """--X-rm then --X-add for constraints and preferences (spaces ignored, as docker)."""
    gone = {c.replace(" ", "") for c in remove}
    kept = [c for c in current if c.replace(" ", "") not in gone]
    return kept + [c for c in add if c not in kept]


def _ports(current: list[dict], add: Iterable[dict], remove: Iterable[dict] | None) -> list[dict]:
    """--publish-rm drops the ports it matches (docker: by target port, and by published
    port too when given; no match is no change); --publish-add replaces the same
    published port/protocol."""
    gone = list(remove or ())
    added = list(add)
    keys = {(int(p["published"]), p.get("protocol", "tcp")) for p in added}
    kept = [
        p
        for p in current
        if not any(_matches(p, r) for r in gone) and (p["published"], p["protocol"]) not in keys
    ]
    return kept + added


def _matches(port: dict, removal: dict) -> bool:
    """Whether `--publish-rm` `removal` (target, protocol, maybe published) names `port`."""
    return (
        int(port["target"]) == int(removal["target"])
        and port.get("protocol", "tcp") == removal.get("protocol", "tcp")
        and (
            removal.get("published") is None or int(port["published"]) == int(removal["published"])
        )
    )


def _networks(current: list[dict], add: Iterable[dict], remove: Iterable[str]) -> list[dict]:
    gone = set(remove)
    missing = sorted(gone - {n["target"] for n in current})
    if missing:
        raise click.BadParameter(
            f"the service is not attached to network {missing[0]}", param_hint="'--network-rm'"
        )
    kept = [n for n in current if n["target"] not in gone]
    names = {n["target"] for n in kept}
    return kept + [n for n in add if n["target"] not in names]
