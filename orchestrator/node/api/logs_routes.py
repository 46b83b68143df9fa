"""API routes of `vxswarm service logs`: a service's or task's output, from every node.

Manager route (any manager answers from its own store, as other reads; refused on workers):
  GET /v1/logs/{ref}?follow=&tail=&since_ns=
      `ref` is a service (name, id) or else a task (id, prefix, "web.1"), as docker's CLI
      tries both. The answer is a stream of JSON lines: first `{"padding": N}` (the
      width of the largest slot, for docker's prefix), then one object per log line
      (`LogLine`), and `{"warning": ...}` for a node that cannot be reached (its tasks
      are left out; the rest still come). The manager asks every node that ran one of
      the target's tasks, ended ones too (their logs stay on their node), itself
      locally, and merges the streams as lines arrive. With `follow` it keeps looking
      at its store for new tasks of the service (a restart, a scale up) and streams
      them too, until the client goes.
Node-to-node (a manager calling this node's agent, on 2377):
  POST /v1/agent/logs  `AgentLogs` -> JSON lines {"task_id", "stream", "time_ns", "log"}
      The node's own tasks' lines, each task's `since`/`tail` applied; with `follow`
      a task's stream goes on until the task has ended and its last line was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import httpx
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from netagent.contract.desired import TaskState
from netagent.contract.errors import NotFound
from netagent.kernel.inotify import DirWatch
from netagent.ledger.inventory import Records
from netagent.tasks.logs import LogEntry, LogReader
from orchestrator.ca.tls import expect
from orchestrator.cluster.objects import Node, ServiceMode, Task
from orchestrator.manager import Manager
from orchestrator.node.api.app import client_gone, parse_body
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.node.daemon import Daemon
from orchestrator.ops.inputs import validate_spec

log = logging.getLogger(__name__)
logs_routes = web.RouteTableDef()

#: A followed log is read again when inotify says its directory changed, and at least
#: this often (a safety net; nothing is expected to need it).
FOLLOW_CHECK = 5.0
#: How often `-f` looks at this manager's store for new tasks of the service, at most
#: (see _new_tasks).
STORE_INTERVAL = 0.5
#: How often a quiet followed stream checks that its client is still there (aiohttp
#: does not cancel a handler whose client left; a write would fail, but none comes).
CLIENT_CHECK = 1.0


class LogsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    follow: bool = False
    tail: int | None = Field(default=None, ge=0)
    since_ns: int = Field(default=0, ge=0)


#: A task id as the manager makes them (orchestrator.cluster.objects.new_id): it names a
#: file on the agent, so nothing else is taken.
TaskId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]


class AgentLogs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_ids: list[TaskId]
    follow: bool = False
    tail: int | None = Field(default=None, ge=0)
    since_ns: int = Field(default=0, ge=0)


class LogLine(BaseModel):
    """One line of a task's output, with what docker's prefix is made of."""

    service: str
    service_id: str
    slot: int
    task_id: str
    node: str
    node_id: str
    stream: str
    time_ns: int
    log: str


# the agent side -------------------------------------------------------------------------


async def node_lines(records: Records, req: AgentLogs) -> AsyncIterator[dict]:
    """This node's lines of `req.task_ids`: what each log holds, in time order, then
    (with `follow`) what they add, until every one of them has ended."""
    readers = {tid: LogReader(records.log_file(tid)) for tid in dict.fromkeys(req.task_ids)}
    watched = [records.logs_dir, records.exit_dir, records.tasks_dir]
    try:
        # Watched before the history is read: a line written meanwhile wakes the follow.
        with DirWatch(watched) if req.follow else contextlib.nullcontext() as changes:
            history: list[tuple[str, LogEntry]] = []
            for tid, reader in readers.items():
                entries = await asyncio.to_thread(reader.history, req.since_ns, req.tail)
                history.extend((tid, e) for e in entries)
            history.sort(key=lambda te: te[1].time_ns)  # stable: each task's order kept
            for tid, entry in history:
                yield _wire(tid, entry)
            live = dict(readers) if req.follow else {}
            while live:
                came = False
                for tid, reader in list(live.items()):
                    ended = records.task_ended(tid)  # before reading: its last lines are in
                    for entry in reader.poll():
                        came = True
                        yield _wire(tid, entry)
                    if ended:
                        del live[tid]
                if live and not came:
                    await changes.changed(FOLLOW_CHECK)
    finally:
        for reader in readers.values():
            reader.close()


def _wire(task_id: str, e: LogEntry) -> dict:
    return {"task_id": task_id, "stream": e.stream, "time_ns": e.time_ns, "log": e.log}


def _records(daemon: Daemon) -> Records:
    if daemon.dataplane is None:
        raise NotFound("this node is not part of a swarm: it has no task logs")
    return daemon.dataplane.records


@logs_routes.post("/v1/agent/logs")
async def agent_logs(request: web.Request) -> web.StreamResponse:
    # A manager of this swarm (access.cluster_door checked its certificate).
    req = await parse_body(request, AgentLogs)
    records = _records(daemon_of(request))
    out = await _json_lines(request)
    # The manager going away (its client left) ends the stream; not an error.
    with contextlib.suppress(ConnectionError):
        async for line in node_lines(records, req):
            await out.write(json.dumps(line).encode() + b"\n")
        await out.write_eof()
    return out


# the manager side -----------------------------------------------------------------------


def log_targets(manager: Manager, ref: str) -> tuple[str | None, list[Task], int]:
    """(the service id, or None for one task; its tasks; the prefix's padding width):
    a service by name or id, else a task, or docker's 'no such task or service'."""
    try:
        service = manager.get_service(ref)
    except NotFound:
        try:
            task = manager.get_task(ref)
        except NotFound:
            raise NotFound(f"no such task or service: {ref}", obj=ref, op="logs") from None
        return None, [task], len(str(task.slot))
    width = len(str(service.spec.replicas)) if service.spec.mode == ServiceMode.REPLICATED else 1
    return service.id, manager.list_tasks(service=service.id, include_history=True), width


def has_log(task: Task) -> bool:
    """The task reached a node that started (or tried to start) its process."""
    return task.node_id is not None and task.status.state.order >= TaskState.STARTING.order


class Fanout:
    """The streams of every node asked, merged into one queue of JSON-able objects."""

    def __init__(self, daemon: Daemon, manager: Manager, query: LogsQuery):
        self.daemon, self.manager, self.query = daemon, manager, query
        # Bounded: a slow client holds the nodes' streams back rather than this memory.
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=1024)
        self.asked: set[str] = set()
        #: Streams not finished yet; each puts None on the queue when it finishes.
        self.running = 0
        self._pumps: set[asyncio.Task] = set()

    def ask(self, tasks: list[Task]) -> None:
        """Start streaming the tasks not asked for yet, one stream per node."""
        by_node: dict[str, list[Task]] = {}
        for t in tasks:
            if t.id not in self.asked and has_log(t):
                self.asked.add(t.id)
                by_node.setdefault(t.node_id or "", []).append(t)
        for node_id, node_tasks in by_node.items():
            pump = asyncio.create_task(self._pump(node_id, {t.id: t for t in node_tasks}))
            self.running += 1
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    def cancel(self) -> None:
        for pump in list(self._pumps):
            pump.cancel()

    async def _pump(self, node_id: str, tasks: dict[str, Task]) -> None:
        node = self.manager.find_node(node_id)
        name = node.hostname if node is not None else node_id
        req = AgentLogs(task_ids=list(tasks), **self.query.model_dump())
        named = _namer(tasks, name)
        try:
            if node is None:
                raise LookupError("the node is no longer in the swarm")
            async for line in self._lines(node, req):
                await self.queue.put(named(line))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one node's failure never ends the others' logs
            names = ", ".join(sorted(f"{t.service_name}.{t.slot}" for t in tasks.values()))
            why = str(err) or type(err).__name__
            await self.queue.put({"warning": f"cannot get logs of {names} from {name}: {why}"})
        self.running -= 1
        await self.queue.put(None)  # wakes the writer to see whether all are done

    def _lines(self, node: Node, req: AgentLogs) -> AsyncIterator[dict]:
        daemon = self.daemon
        if daemon.identity and node.id == daemon.identity.node_id:
            return node_lines(_records(daemon), req)
        return _remote_lines(daemon, node, req)


async def _remote_lines(daemon: Daemon, node: Node, req: AgentLogs) -> AsyncIterator[dict]:
    url = f"{daemon.node_url(node.addr)}/v1/agent/logs"
    timeout = httpx.Timeout(None, connect=2.0)
    async with (
        httpx.AsyncClient(timeout=timeout, verify=daemon.tls.client) as client,
        client.stream(
            "POST",
            url,
            content=req.model_dump_json(),
            headers={"Content-Type": "application/json"},
            extensions=expect(node.id),
        ) as resp,
    ):
        if resp.status_code != 200:
            body = await resp.aread()
            try:
                raise RuntimeError(json.loads(body)["error"]["message"])
            except (ValueError, KeyError, TypeError):
                raise RuntimeError(f"HTTP {resp.status_code}") from None
        async for raw in resp.aiter_lines():
            if raw:
                yield json.loads(raw)


def _namer(tasks: dict[str, Task], hostname: str) -> Callable[[dict], dict]:
    def named(line: dict) -> dict:
        t = tasks[line["task_id"]]
        return LogLine(
            service=t.service_name,
            service_id=t.service_id,
            slot=t.slot,
            node=hostname,
            node_id=t.node_id or "",
            **line,
        ).model_dump()

    return named


@logs_routes.get("/v1/logs/{ref}")
@manager_route
async def logs(request: web.Request, manager: Manager) -> web.StreamResponse:
    query = validate_spec(LogsQuery, dict(request.query))
    service_id, tasks, width = log_targets(manager, request.match_info["ref"])
    fanout = Fanout(daemon_of(request), manager, query)
    out = await _json_lines(request)
    watcher = None
    try:
        await out.write(json.dumps({"padding": width}).encode() + b"\n")
        fanout.ask(tasks)
        if query.follow and service_id is not None:
            watcher = asyncio.create_task(_new_tasks(fanout.daemon, manager, service_id, fanout))
        while fanout.running or (watcher and not watcher.done()) or not fanout.queue.empty():
            try:
                item = await asyncio.wait_for(fanout.queue.get(), CLIENT_CHECK)
            except TimeoutError:
                if client_gone(request):
                    break
                continue
            if item is not None:
                await out.write(json.dumps(item).encode() + b"\n")
        else:
            await out.write_eof()
    except ConnectionError:
        pass  # the client left (Ctrl-C on `logs -f`): nothing more to send
    finally:
        fanout.cancel()
        if watcher is not None:
            watcher.cancel()
    return out


async def _new_tasks(daemon: Daemon, manager: Manager, service_id: str, fanout: Fanout) -> None:
    """With --follow: stream each task of the service as it reaches a node. The leader
    wakes this at each change it makes; another manager's store follows the leader's
    writes through its own watch, without telling, so there it looks every
    STORE_INTERVAL (a look is a read of its memory)."""
    seen = -1  # the tasks listed before this began may already be older
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(daemon.notifier.current.wait(), STORE_INTERVAL)
        if manager.revision == seen:
            continue  # nothing was written (a heartbeat that changed nothing)
        seen = -1  # the tasks listed before this began may already be older
        try:
            fanout.ask(manager.list_tasks(service=service_id, include_history=True))
        except NotFound:
            await fanout.queue.put({"warning": "the service was removed"})
            return


async def _json_lines(request: web.Request) -> web.StreamResponse:
    out = web.StreamResponse()
    out.content_type = "application/json"
    await out.prepare(request)
    return out
