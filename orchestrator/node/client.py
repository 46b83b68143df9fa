"""The API client the CLI uses: one daemon's user API, on its unix socket.

The target is chosen like Docker's: `VXSWARM_HOST` (`unix:///path`), else the local
daemon's socket. There is no plain-TCP user API to point it at: port 2377 carries
node-to-node calls only, with certificates (orchestrator.node.api.access); a user on
another machine runs the CLI on a node (`vxswarm lab ssh`, `ssh`), as with a Docker
engine that does not expose its API. Error bodies
(`{"error": {"kind", "message"}}`) come back as the same `VxswarmError`
subclass the server raised, so the CLI prints one line and exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from netagent.contract.errors import ERRORS_BY_NAME, InvalidArgument, Unavailable, VxswarmError

#: Set by a manager answering a read from its own copy while the swarm has no leader.
STALE_HEADER = "X-Vxswarm-Stale"

DEFAULT_STATE_DIR = "/var/lib/vxswarm"
DEFAULT_SOCKET = f"{DEFAULT_STATE_DIR}/vxswarm.sock"


@dataclass(frozen=True)
class Endpoint:
    """Where a daemon's user API listens: its unix socket."""

    uds: str
    url: str = "http://vxswarm"

    @classmethod
    def parse(cls, host: str) -> Endpoint:
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not path.startswith("/"):
                raise InvalidArgument(
                    f"invalid VXSWARM_HOST {host!r}: expected unix:///absolute/path"
                )
            return cls(uds=path)
        if host.startswith(("tcp://", "http://", "https://")):
            raise InvalidArgument(
                f"invalid VXSWARM_HOST {host!r}: the user API is served on the node's unix "
                "socket only (expected unix:///path; run the CLI on the node, e.g. "
                'vxswarm lab ssh NODE ... or eval "$(vxswarm lab env NODE)")'
            )
        raise InvalidArgument(f"invalid VXSWARM_HOST {host!r}: expected unix:///absolute/path")

    @classmethod
    def from_env(cls) -> Endpoint:
        return cls.parse(os.environ.get("VXSWARM_HOST") or f"unix://{DEFAULT_SOCKET}")

    def describe(self) -> str:
        return f"unix://{self.uds}"


class Client:
    """A thin synchronous JSON client of one daemon."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 30.0):
        self.endpoint = endpoint
        transport = httpx.HTTPTransport(uds=endpoint.uds)
        self._http = httpx.Client(base_url=endpoint.url, transport=transport, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        try:
            resp = self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as err:
            raise Unavailable(
                f"cannot connect to the vxswarm daemon at {self.endpoint.describe()}: {err}. "
                "Is the daemon running?"
            ) from err
        return _decode(resp)

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.call("POST", path, body, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, **params)

    def stream(
        self, path: str, body: Any = None, *, method: str = "POST", **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield the JSON lines of a streamed answer (exec output, logs, events)."""
        params = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream(method, path, json=body, params=params, timeout=None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _decode(resp)
                for line in resp.iter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as err:
            raise Unavailable(
                f"lost the vxswarm daemon at {self.endpoint.describe()}: {err}"
            ) from None


def _decode(resp: httpx.Response) -> Any:
    stale = resp.headers.get(STALE_HEADER)
    if stale:
        # Docker has no such case (its managers refuse reads without a leader); say it
        # on stderr, so that scripts reading stdout still get the answer.
        print(f"WARNING: {stale}", file=sys.stderr)
    if resp.status_code < 400:
        return resp.json() if resp.content else None
    try:
        err = resp.json()["error"]
        cls = ERRORS_BY_NAME.get(err.get("kind", ""), VxswarmError)
        raise cls(err["message"])
    except (ValueError, KeyError, TypeError):
        raise VxswarmError(f"daemon answered HTTP {resp.status_code}: {resp.text[:200]}") from None
