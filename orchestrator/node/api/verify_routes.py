"""API routes of `vxswarm verify [--node NODE] [--fix]`: nodes against their desired state.

Manager route (leader; forwarded by other managers, refused on workers):
  POST /v1/verify        {"node": ref | null, "fix": bool, "dns": bool}
      Waits until every node applied its current desired state (so a change still on
      its way is not called drift), then asks each node, in parallel, to check itself
      against the desired state this manager computes for it (and repair, with `fix`).
      After repairs it checks again, a few rounds until clean, because some repairs
      go through the cluster (a task reported failed is replaced by the restart policy).
Node-to-node (agent, node secret):
  POST /v1/agent/verify  netagent.drift.VerifyRequest -> netagent.drift.NodeReport
The checking and repairing are netagent.drift's; handlers only parse, call and answer,
and the node's work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from netagent.contract.errors import Unavailable
from netagent.drift import Difference, NodeReport, VerifyRequest
from netagent.drift.check import verify_node
from orchestrator.ca.tls import expect
from orchestrator.cluster.objects import Node, NodeStatus
from orchestrator.manager import Manager
from orchestrator.node.api.app import json_response, parse_body
from orchestrator.node.api.redact import without_file_data
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.node.daemon import Daemon

log = logging.getLogger(__name__)
verify_routes = web.RouteTableDef()

#: After repairs: how long to keep checking again until the cluster shows them all done.
RECHECK_SECONDS = 10.0
RECHECK_PAUSE = 0.5
NODE_TIMEOUT = 120.0


class VerifyCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str | None = None
    fix: bool = False
    dns: bool = True


@verify_routes.post("/v1/verify")
@manager_route
async def verify(request: web.Request, manager: Manager) -> web.Response:
    call = await parse_body(request, VerifyCall)
    daemon = daemon_of(request)
    nodes = [manager.get_node(call.node)] if call.node else manager.list_nodes()
    await daemon.settle()
    first = await _each(daemon, manager, nodes, fix=call.fix, dns=call.dns)
    results = [_result(n, r, e) for n, (r, e) in zip(nodes, first, strict=True)]
    if call.fix:
        remaining = first
        if any(r is not None and r.fixed for r, _ in first):
            remaining = await _until_clean(daemon, manager, nodes, call.dns)
        for res, (r, e) in zip(results, remaining, strict=True):
            res["remaining"] = _named(res["node"], r.differences) if r is not None else []
            res["error"] = res["error"] or e
    return json_response({"fix": call.fix, "nodes": results})


async def _until_clean(
    daemon: Daemon, manager: Manager, nodes: list[Node], dns: bool
) -> list[tuple[NodeReport | None, str]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECHECK_SECONDS
    while True:
        await daemon.settle()
        again = await _each(daemon, manager, nodes, fix=False, dns=dns)
        clean = all(r is not None and not r.differences for r, _ in again)
        if clean or loop.time() + RECHECK_PAUSE > deadline:
            return again
        await asyncio.sleep(RECHECK_PAUSE)


async def _each(
    daemon: Daemon, manager: Manager, nodes: list[Node], *, fix: bool, dns: bool
) -> list[tuple[NodeReport | None, str]]:
    return list(await asyncio.gather(*(_one(daemon, manager, n, fix, dns) for n in nodes)))


async def _one(
    daemon: Daemon, manager: Manager, node: Node, fix: bool, dns: bool
) -> tuple[NodeReport | None, str]:
    """One node's report, or None and why it could not be verified."""
    if node.status == NodeStatus.DOWN:
        return None, "node is down"
    req = VerifyRequest(desired=without_file_data(manager.desired_state(node.id)), fix=fix, dns=dns)
    if daemon.identity and node.id == daemon.identity.node_id:
        try:
            return await asyncio.to_thread(verify_node, _dataplane(daemon), req), ""
        except Unavailable as exc:
            return None, str(exc)
    url = f"{daemon.node_url(node.addr)}/v1/agent/verify"
    headers = {"Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=NODE_TIMEOUT, verify=daemon.tls.client) as client:
            resp = await client.post(
                url, content=req.model_dump_json(), headers=headers, extensions=expect(node.id)
            )
    except httpx.TransportError as err:
        return None, f"cannot reach {node.addr}:{daemon.cfg.port}: {err}"
    if resp.status_code != 200:
        try:
            return None, resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return None, f"HTTP {resp.status_code}: {resp.text[:200]}"
    return NodeReport.model_validate(resp.json()), ""


def _named(hostname: str, diffs: tuple[Difference, ...]) -> list[Difference]:
    return [d.model_copy(update={"node": hostname}) for d in diffs]


def _result(node: Node, report: NodeReport | None, error: str) -> dict:
    r = report or NodeReport()
    return {
        "node": node.hostname,
        "node_id": node.id,
        "error": error,
        "differences": _named(node.hostname, r.differences),
        "fixed": _named(node.hostname, r.fixed),
        "fix_errors": list(r.errors),
    }


def _dataplane(daemon: Daemon):
    if daemon.dataplane is None:
        raise Unavailable("this node is not part of a swarm: nothing to verify")
    return daemon.dataplane


@verify_routes.post("/v1/agent/verify")
async def agent_verify(request: web.Request) -> web.Response:
    # A manager of this swarm (access.cluster_door checked its certificate).
    daemon = daemon_of(request)
    req = await parse_body(request, VerifyRequest)
    return json_response(await asyncio.to_thread(verify_node, _dataplane(daemon), req))
