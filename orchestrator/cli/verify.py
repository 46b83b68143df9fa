"""`vxswarm verify [--node NODE] [--fix] [--format json]`: flags, one call, printing.

The checking happens on each node (netagent.drift, through the manager's API); this
module prints one line per difference, naming the node, the kind of object, the object
and what is wrong, then a summary. Exit 0 when nothing differs (after --fix: nothing
is left), 1 otherwise.
"""

from __future__ import annotations

from typing import Any

import click

from netagent.drift import Difference, Fix, Kind
from orchestrator.cli.common import output_option
from orchestrator.cli.format import echo_json
from orchestrator.node.client import Client, Endpoint

#: Settling, DNS round trips and a repair's second look can take a while on a big node.
TIMEOUT = 300.0


@click.command()
@click.option("--node", "node_ref", help="Only this node (name or id).")
@click.option("--fix", is_flag=True, help="Repair what differs, then verify again.")
@click.option("--no-dns", is_flag=True, help="Do not ask every task's resolver its names.")
@output_option
def verify(node_ref: str | None, fix: bool, no_dns: bool, fmt: str) -> None:
    """Compare each node's kernel and processes with its desired state: namespaces, links,
    addresses, FDB and neighbour entries, nft rules, DNS answers and task processes."""
    with Client(Endpoint.from_env(), timeout=TIMEOUT) as c:
        data = c.post("/v1/verify", {"node": node_ref, "fix": fix, "dns": not no_dns})
    nodes: list[dict[str, Any]] = data["nodes"]
    if fmt == "json":
        echo_json(data)
    else:
        for line in report_lines(nodes, fix):
            click.echo(line)
    if any(left(n, fix) for n in nodes):
        raise SystemExit(1)


def left(node: dict[str, Any], fix: bool) -> list[Difference]:
    """What still differs on a node (after --fix: what the second look found), a node
    that could not be verified being one difference itself."""
    out = [Difference.model_validate(d) for d in node["remaining" if fix else "differences"]]
    if node["error"]:
        name = node["node"]
        problem = f"not verified ({node['error']})"
        out.append(
            Difference(kind=Kind.NODE, object=name, problem=problem, fix=Fix.NONE, node=name)
        )
    return out


def report_lines(nodes: list[dict[str, Any]], fix: bool) -> list[str]:
    """The human report: differences (or what was fixed and what is left), then a summary."""
    width = max((len(n["node"]) for n in nodes), default=0)
    lines: list[str] = []
    fixed = 0
    if fix:
        for n in nodes:
            fixed += len(n["fixed"])
            lines += ["fixed: " + Difference.model_validate(d).line(width) for d in n["fixed"]]
            lines += [f"could not fix on {n['node']}: {e}" for e in n["fix_errors"]]
    remaining = {n["node"]: left(n, fix) for n in nodes}
    lines += [d.line(width) for diffs in remaining.values() for d in diffs]
    count = sum(len(d) for d in remaining.values())
    after = f" after fixing {fixed}" if fixed else ""
    on = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    if not count:
        lines.append(f"no difference on {on}{after}")
    else:
        many = "difference" if count == 1 else "differences"
        where = f"{sum(1 for d in remaining.values() if d)} of {on}"
        lines.append(f"{count} {many}{' left' if fix else ''} on {where}{after}")
    return lines
