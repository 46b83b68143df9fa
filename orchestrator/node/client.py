"""The API client the CLI uses, and daemons use to reach each other.

The target is chosen like Docker's: `VXSWARM_HOST` (`unix:///path` or
`tcp://host:2377`), else the local daemon's socket. Error bodies
(`{"error": {"kind", "message"}}`) come back as the same `VxswarmError`
subclass the server raised, so the CLI prints one line and exits non-zero.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from netagent.contract.errors import ERRORS_BY_NAME, InvalidArgument, Unavailable, VxswarmError

DEFAULT_STATE_DIR = "/var/lib/vxswarm"
DEFAULT_SOCKET = f"{DEFAULT_STATE_DIR}/vxswarm.sock"


@dataclass(frozen=True)
class Endpoint:
    """Where a daemon listens: a unix socket path or a TCP host:port."""

    url: str
    uds: str | None = None

    @classmethod
    def parse(cls, host: str) -> Endpoint:
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not path.startswith("/"):
                raise InvalidArgument(
                    f"invalid VXSWARM_HOST {host!r}: expected unix:///absolute/path"
                )
            return cls(url="http://vxswarm", uds=path)
        if host.startswith("tcp://"):
            hostport = host[len("tcp://") :].rstrip("/")
            if ":" not in hostport:
                hostport += ":2377"
            return cls(url=f"http://{hostport}")
        raise InvalidArgument(
            f"invalid VXSWARM_HOST {host!r}: expected unix:///path or tcp://host:port"
        )

    @classmethod
    def from_env(cls) -> Endpoint:
        return cls.parse(os.environ.get("VXSWARM_HOST") or f"unix://{DEFAULT_SOCKET}")

    @property
    def is_local(self) -> bool:
        """A unix socket means the daemon runs on this machine (exec can nsenter)."""
        return self.uds is not None

    def describe(self) -> str:
        return f"unix://{self.uds}" if self.uds else self.url.replace("http://", "tcp://")


class Client:
    """A thin synchronous JSON client of one daemon."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 30.0, secret: str | None = None):
        self.endpoint = endpoint
        transport = httpx.HTTPTransport(uds=endpoint.uds) if endpoint.uds else None
        headers = {"X-Vxswarm-Secret": secret} if secret else {}
        self._http = httpx.Client(
            base_url=endpoint.url, transport=transport, timeout=timeout, headers=headers
        )

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

    def stream(self, path: str, body: Any) -> Iterator[dict[str, Any]]:
        """POST and yield the JSON lines of a streamed answer (exec output)."""
        try:
            with self._http.stream("POST", path, json=body, timeout=None) as resp:
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
    if resp.status_code < 400:
        return resp.json() if resp.content else None
    try:
        err = resp.json()["error"]
        cls = ERRORS_BY_NAME.get(err.get("kind", ""), VxswarmError)
        raise cls(err["message"])
    except (ValueError, KeyError, TypeError):
        raise VxswarmError(f"daemon answered HTTP {resp.status_code}: {resp.text[:200]}") from None
