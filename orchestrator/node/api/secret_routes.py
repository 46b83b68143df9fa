"""The user API of secrets and configs (manager routes, as routes.py's).

    POST   /v1/secrets         {"name", "labels", "data": base64}   -> 201, the secret
    GET    /v1/secrets         every secret
    GET    /v1/secrets/{ref}   one, by id, name or id prefix
    DELETE /v1/secrets/{ref}   refused while a service uses it
    (the same under /v1/configs)

No answer ever holds a secret's value, nor its sealed box: a secret is shown as its id,
spec (name, labels), version and times. A config is shown with its data (base64), as
`docker config inspect` shows it. The body of a create is read by hand so that no
error message can quote the data.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from netagent.contract.desired import FileKind
from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.secrets import Secret
from orchestrator.manager import Manager
from orchestrator.node.api.app import jsonable
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.ops.inputs import validate_spec
from orchestrator.ops.secrets import SPECS, FileObject

secret_routes = web.RouteTableDef()
COLLECTION = "/v1/{kind:secrets|configs}"


def _kind(request: web.Request) -> FileKind:
    return FileKind(request.match_info["kind"].removesuffix("s"))


def view(obj: FileObject) -> dict[str, Any]:
    """The object as the API shows it: a secret without its sealed value."""
    return obj.model_dump(mode="json", exclude={"sealed"} if isinstance(obj, Secret) else None)


async def _create_body(request: web.Request, kind: FileKind) -> tuple[Any, bytes]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidArgument(f"{kind} create: the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"{kind} create: expected a JSON object")
    data = body.pop("data", None)
    try:
        if not isinstance(data, str):
            raise ValueError
        value = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{kind} create: 'data' must be base64 text") from None
    return validate_spec(SPECS[kind], body), value


@secret_routes.post(COLLECTION)
@manager_route
async def file_create(request: web.Request, manager: Manager) -> web.Response:
    kind = _kind(request)
    spec, data = await _create_body(request, kind)
    obj = manager.create_file(kind, spec, data)
    daemon_of(request).changed()
    return web.json_response(view(obj), status=201)


@secret_routes.get(COLLECTION)
@manager_route
async def file_list(request: web.Request, manager: Manager) -> web.Response:
    return web.json_response(jsonable([view(o) for o in manager.list_files(_kind(request))]))


@secret_routes.get(COLLECTION + "/{ref}")
@manager_route
async def file_inspect(request: web.Request, manager: Manager) -> web.Response:
    obj = manager.get_file(_kind(request), request.match_info["ref"])
    return web.json_response(view(obj))


@secret_routes.delete(COLLECTION + "/{ref}")
@manager_route
async def file_rm(request: web.Request, manager: Manager) -> web.Response:
    manager.remove_file(_kind(request), request.match_info["ref"])
    daemon_of(request).changed()
    return web.json_response({})
