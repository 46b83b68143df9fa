"""API route of `vxswarm events`: the cluster's changes as a stream of docker's event messages.

Manager route (any manager answers from its own etcd member; refused on workers):
  GET /v1/events?since_ns=&until_ns=
      JSON lines: docker's `events.Message` objects (orchestrator.cluster.events), and
      `{"warning": ...}` when the replay cannot reach back as far as asked. Without
      `until_ns` the stream goes on until the client leaves; with one it ends there.
The watch is orchestrator.cluster.event_stream's, read in a thread (the etcd client is
synchronous) and handed to this loop through a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.cluster import keys
from orchestrator.cluster.event_stream import EventSource, Notice
from orchestrator.manager import Manager
from orchestrator.node.api.app import client_gone
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.ops.inputs import validate_spec

events_routes = web.RouteTableDef()
#: How often a quiet stream checks its client is still there and `until` has not passed.
CHECK_INTERVAL = 1.0
_END = object()


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since_ns: int | None = Field(default=None, ge=0)
    until_ns: int | None = Field(default=None, ge=0)


@events_routes.get("/v1/events")
@manager_route
async def events(request: web.Request, manager: Manager) -> web.StreamResponse:
    query = validate_spec(EventsQuery, dict(request.query))
    client = daemon_of(request).etcd()

    def hostname(node_id: str) -> str | None:
        node = manager.find_node(node_id)
        return node.hostname if node is not None else None

    source = EventSource(client, keys.objects_prefix(), hostname)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    failed: list[BaseException] = []

    def read() -> None:
        try:
            for item in source.messages(query.since_ns, query.until_ns):
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as err:  # handed to the loop: the answer says it
            failed.append(err)
        finally:
            client.close()  # this thread's connection to the member
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    reader = threading.Thread(target=read, name="events-watch", daemon=True)
    reader.start()
    out = web.StreamResponse()
    out.content_type = "application/json"
    try:
        await out.prepare(request)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), CHECK_INTERVAL)
            except TimeoutError:
                if client_gone(request) or _past(query.until_ns):
                    break
                continue
            if item is _END:
                if failed:
                    await _write(out, {"warning": f"the event stream stopped: {failed[0]}"})
                break
            line = {"warning": item.text} if isinstance(item, Notice) else item.model_dump()
            await _write(out, line)
        with contextlib.suppress(ConnectionError):
            await out.write_eof()
    except ConnectionError:
        pass  # the client left (Ctrl-C): nothing more to send
    finally:
        source.close()
    return out


async def _write(out: web.StreamResponse, line: dict) -> None:
    await out.write(json.dumps(line).encode() + b"\n")


def _past(until_ns: int | None) -> bool:
    return until_ns is not None and time.time_ns() > until_ns
