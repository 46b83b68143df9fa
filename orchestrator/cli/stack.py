"""`vxswarm stack deploy|ls|ps|services|rm`: compose v3 files deployed as a stack.

Flags and printing only: reading and checking the files is `orchestrator.stack`'s
(loader → compose → convert), the plan is `stack.deploy`'s, the writes are
`stack.apply`'s. Everything is read and checked before the first API write, so
a refused file deploys nothing.
"""

from __future__ import annotations

import os

import click

from netagent.contract.errors import NotFound
from orchestrator.cli.common import api
from orchestrator.cli.filters import SERVICE_KEYS, TASK_KEYS, Filters
from orchestrator.cli.output import columns, echo_rows, listing_options
from orchestrator.cli.service import SERVICE_COLUMNS, service_rows
from orchestrator.cli.task_table import echo_tasks
from orchestrator.stack import compose, convert, deploy, loader
from orchestrator.stack.apply import apply, current, remove_stack
from orchestrator.stack.deploy import Action, Plan, Step
from orchestrator.stack.names import check_stack_name, in_stack, stack_counts


@click.group()
def stack() -> None:
    """Manage stacks (compose v3 files deployed as services and networks)."""


def step_line(step: Step) -> str | None:
    """What docker prints for a step (nothing for a network that already exists)."""
    if step.action == Action.CREATE:
        return f"Creating {step.kind} {step.name}"
    if step.action == Action.UPDATE:
        return f"Updating service {step.name} (id: {step.id}): {step.reason} changed"
    if step.action == Action.REMOVE:
        return f"Removing {step.kind} {step.name}"
    return f"Service {step.name} is up to date" if step.kind == "service" else None


def echo_step(step: Step) -> None:
    line = step_line(step)
    if line:
        click.echo(line)


def load_plan(files: tuple[str, ...], name: str, prune: bool) -> Plan:
    """Read, check and plan; warnings go to stderr. Raises before any write."""
    check_stack_name(name)
    raw, warnings = loader.load(files, os.environ)
    parsed, ignored = compose.parse(raw)
    if ignored:
        warnings.append(f"Ignoring unsupported options: {', '.join(ignored)}")
    spec = convert.convert(parsed, name, os.environ)
    for w in warnings:
        click.echo(w, err=True)
    networks, services = current(api())
    plan = deploy.plan(spec, networks, services, prune=prune)
    for w in plan.warnings:
        click.echo(w, err=True)
    return plan


@stack.command("deploy")
@click.option(
    "-c",
    "--compose-file",
    "files",
    multiple=True,
    required=True,
    help="Compose file (v3); several are merged in order; '-' reads standard input.",
)
@click.option("--prune", is_flag=True, help="Remove services no longer in the compose file.")
@click.option("--dry-run", is_flag=True, help="Print what would change, change nothing.")
@click.argument("name")
def deploy_cmd(files: tuple[str, ...], prune: bool, dry_run: bool, name: str) -> None:
    """Deploy a new stack or update an existing one."""
    plan = load_plan(files, name, prune)
    if dry_run:
        for step in plan.steps:
            echo_step(step)
        return
    apply(api(), plan, echo_step)


STACK_COLUMNS = columns("table {{.Name}}\t{{.Services}}", ["Name", "Services"])


@stack.command("ls")
@listing_options(quiet=None)
def ls(fmt: str) -> None:
    """List stacks."""
    counts = stack_counts(api().get("/v1/services"))
    stacks = [{"name": k, "services": n} for k, n in counts.items()]
    echo_rows(
        stacks,
        fmt,
        False,
        lambda objs: [{"Name": s["name"], "Services": s["services"]} for s in objs],
        STACK_COLUMNS,
    )


def stack_services(name: str) -> list[dict]:
    services = in_stack(api().get("/v1/services"), check_stack_name(name))
    if not services:
        raise NotFound(f"nothing found in stack: {name}", obj=name, op="stack")
    return services


@stack.command("ps")
@listing_options(TASK_KEYS, quiet="Only display task IDs.", no_trunc=True)
@click.argument("name")
def ps(name: str, filters: Filters, quiet: bool, no_trunc: bool, fmt: str) -> None:
    """List the tasks in the stack."""
    c = api()
    tasks = [t for s in stack_services(name) for t in c.get("/v1/tasks", service=s["id"])]
    echo_tasks(tasks, filters, fmt, quiet, no_trunc)


@stack.command("services")
@listing_options(SERVICE_KEYS)
@click.argument("name")
def services(filters: Filters, quiet: bool, name: str, fmt: str) -> None:
    """List the services in the stack."""
    echo_rows(filters.apply(stack_services(name)), fmt, quiet, service_rows, SERVICE_COLUMNS)


@stack.command("rm")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...]) -> None:
    """Remove one or more stacks: their services, then their networks."""
    for name in names:
        if not remove_stack(api(), check_stack_name(name), echo_step):
            click.echo(f"Nothing found in stack: {name}", err=True)
