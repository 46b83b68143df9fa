"""The calls a node makes to its manager outside the agent's session: join and renewal.

Both go to port 2377 over TLS, the manager verified against the swarm's roots (the
pinned bundle at join) and as a manager (its certificate names `swarm-manager`), and
answer with one error line: PermissionDenied carrying the
manager's own words on a refusal, Unavailable when the manager cannot be reached or
fails.
"""

from __future__ import annotations

import ssl

import httpx

from netagent.contract.errors import PermissionDenied, Unavailable
from orchestrator.ca import tls, tokens


async def post(addr: str, path: str, body: str, verify: ssl.SSLContext, what: str) -> bytes:
    """POST the JSON `body` to `path` of the manager at `addr` ("ip:port"); its answer."""
    async with httpx.AsyncClient(timeout=10, verify=verify) as client:
        try:
            resp = await client.post(
                f"https://{addr}{path}", content=body, extensions=tls.expect(tls.MANAGER_NAME)
            )
        except httpx.TransportError as err:
            raise Unavailable(f"cannot reach the manager at {addr}: {err}") from None
    if resp.status_code == 403:
        try:
            why = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            why = resp.text[:200]
        raise PermissionDenied(f"{what} refused: {why}")
    if resp.status_code >= 400:
        raise Unavailable(f"{what} failed at {addr}: {resp.text[:200]}")
    return resp.content


async def fetch_pinned_ca(addr: str, token: str) -> bytes:
    """The root CA bundle of the manager at `addr`, if its digest is the token's: checked
    before the token's secret is sent anywhere (Swarm's trust on first use, pinned by
    the token)."""
    tokens.parse_token(token)  # a malformed token goes nowhere
    async with httpx.AsyncClient(timeout=10, verify=tls.pin_context()) as client:
        try:
            resp = await client.get(f"https://{addr}/v1/ca")
        except httpx.TransportError as err:
            raise Unavailable(f"cannot reach the manager at {addr}: {err}") from None
    if resp.status_code >= 400:
        raise Unavailable(f"the manager at {addr} gave no CA: {resp.text[:200]}")
    try:
        tokens.check_bundle(resp.content, token)
    except PermissionDenied:
        raise PermissionDenied(
            f"the manager at {addr} presents a CA whose digest does not match the token: "
            "wrong swarm or a man in the middle"
        ) from None
    return resp.content
