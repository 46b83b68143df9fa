"""aiohttp plumbing: error mapping, JSON helpers, request validation, proxying.

Handlers raise `VxswarmError`s; the middleware turns them into
`{"error": {"kind", "message"}}` with the error's HTTP status, which the client
turns back into the same class. Pydantic validation errors become one-line
`InvalidArgument`s naming the field and the value.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from aiohttp import web
from pydantic import BaseModel, ValidationError

from netagent.contract.errors import InvalidArgument, Unavailable, VxswarmError
from orchestrator.ca import tls
from orchestrator.ops.inputs import one_line, validate_spec

log = logging.getLogger(__name__)

#: Seconds to open a connection to another daemon: one whose machine is gone never
#: refuses, and a forwarded write must fail rather than hang.
CONNECT_TIMEOUT = 2.0


class NotSent(Unavailable):
    """The other daemon could not be connected to: nothing of the request reached it,
    so sending it again (elsewhere) is safe."""


M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(jsonable(data), status=status)


def jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    return data


async def parse_body(request: web.Request, model: type[M]) -> M:
    try:
        data = await request.json()
    except ValueError as err:
        raise InvalidArgument(f"request body is not valid JSON: {err}") from None
    return validate_spec(model, data)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except VxswarmError as err:
        return web.json_response(
            {"error": {"kind": type(err).__name__, "message": str(err)}}, status=err.http_status
        )
    except ValidationError as err:
        return web.json_response(
            {"error": {"kind": "InvalidArgument", "message": one_line(err)}},
            status=400,
        )


def client_gone(request: web.Request) -> bool:
    """The client of a long stream left: aiohttp does not cancel its handler, and a
    quiet stream has no write to fail."""
    return request.transport is None or request.transport.is_closing()


async def proxy(
    request: web.Request,
    base_url: str,
    *,
    path: str | None = None,
    body: bytes | None = None,
    verify: ssl.SSLContext | None = None,
    expect: str | None = None,
    headers: dict[str, str] | None = None,
    read_timeout: float | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> web.StreamResponse:
    """Forward a request to another daemon and stream its answer back unchanged.

    By default the request goes as it came (method, path, query, body); `path` and
    `body` make it a POST of that body to that path instead (node-to-node calls).
    `verify`: this node's client context, for another node's port 2377 (mutual TLS);
    `expect`: the name the other node's certificate must carry (a node id, or
    `swarm-manager` for the leader); `headers`: sent on top of the content type;
    `read_timeout`: the longest silence of the other daemon (None: streams such as a
    capture may be silent for long). A daemon that does not answer its connection
    within `connect_timeout` (its machine is gone) is NotSent.
    """
    if body is None:
        body = await request.read()
        method, params = request.method, list(request.rel_url.query.items())
    else:
        method, params = "POST", []
    async with httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        verify=verify if verify is not None else True,
    ) as client:
        upstream = client.build_request(
            method,
            path or request.rel_url.path,
            params=params,
            content=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            extensions=tls.expect(expect) if expect else None,
        )
        try:
            resp = await client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise NotSent(f"cannot reach {base_url}: {str(err) or 'no answer'}") from None
        except httpx.TransportError as err:
            raise Unavailable(f"cannot reach {base_url}: {err}") from None
        try:
            out = web.StreamResponse(status=resp.status_code)
            out.content_type = resp.headers.get("content-type", "application/json").split(";")[0]
            # The client may leave a stream early (Ctrl-C on exec, capture -c N, an agent
            # that moved to another manager): not an error.
            with contextlib.suppress(ConnectionError):
                await out.prepare(request)
                async for chunk in resp.aiter_raw():
                    await out.write(chunk)
                await out.write_eof()
            return out
        except httpx.TransportError as err:
            raise Unavailable(f"{base_url} stopped answering: {err}") from None
        finally:
            await resp.aclose()
