"""The agent's session with its manager: join, heartbeats, assignments.

The wire models of the dispatcher protocol are part of the contract
(netagent.contract.messages). Two threads per session:

- heartbeats: every period, or at once when a task's status changed, POST the
  node's task statuses; the answer carries the current heartbeat period.
- assignments: a long-poll that returns when the node's desired state differs
  from the digest the agent last applied; the agent then applies it.

Both use httpx against the manager's TCP address on the underlay, as separate
machines would, over mutual TLS: the SSL context (the node's certificate and the
cluster's roots) is made by the node process and handed in, so the data plane never
touches the CA. Connections are kept alive: a heartbeat costs no handshake. A manager
that is away is retried, never fatal.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import httpx

from netagent.contract.desired import NodeDesiredState, TaskStatus
from netagent.contract.messages import (
    Assignments,
    HeartbeatRequest,
    HeartbeatResponse,
    NodeIdentity,
)
from netagent.contract.patch import InvalidPatch, apply_patch

log = logging.getLogger(__name__)
LONG_POLL_SECONDS = 15.0


class Session:
    """Runs the heartbeat and assignment loops of one node until stopped."""

    def __init__(
        self,
        identity: NodeIdentity,
        *,
        tls: ssl.SSLContext,
        server_name: str,
        apply: Callable[[NodeDesiredState], object],
        statuses: Callable[[], list[TaskStatus]],
        on_rejected: Callable[[str], None] | None = None,
        on_heartbeat: Callable[[str], None] | None = None,
        on_assignments: Callable[[str], None] | None = None,
        on_ca_digest: Callable[[str], None] | None = None,
    ):
        self.identity = identity
        #: What the manager's certificate must name (sent as SNI, checked by `tls`).
        self._expect = {"sni_hostname": server_name}
        self._apply = apply
        self._statuses = statuses
        self._on_rejected = on_rejected
        #: Told how each heartbeat went: "ok", "refused" (an HTTP error) or "unreachable".
        self._on_heartbeat = on_heartbeat or (lambda _result: None)
        #: Told the form of each desired state received: "whole", "patch" or "refused".
        self._on_assignments = on_assignments or (lambda _form: None)
        #: Told the digest of the roots the swarm trusts, from every heartbeat answer.
        self._on_ca_digest = on_ca_digest or (lambda _digest: None)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.applied_digest = ""
        #: The state of `applied_digest`: what the next patch is applied to.
        self._applied: NodeDesiredState | None = None
        self.period = identity.heartbeat_period
        self._http = self._client(tls)

    def _client(self, tls: ssl.SSLContext) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://{self.identity.manager_addr}",
            verify=tls,
            timeout=LONG_POLL_SECONDS + 10,
        )

    def use_tls(self, tls: ssl.SSLContext) -> None:
        """Talk with a renewed certificate (or new roots) from the next request on.

        A long-poll in flight on the old client fails and is simply polled again."""
        old, self._http = self._http, self._client(tls)
        old.close()

    def start(self) -> None:
        for target, name in ((self._heartbeats, "heartbeat"), (self._assignments, "assignments")):
            t = threading.Thread(target=target, name=f"session-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def status_changed(self) -> None:
        """Send statuses now rather than at the next period (called from any thread)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        # The assignments thread may sit in a long-poll; it is a daemon thread and exits
        # on its next wake-up, so do not wait the poll out.
        for t in self._threads:
            t.join(timeout=0.5)
        self._http.close()

    def _rejected(self, resp: httpx.Response) -> bool:
        if resp.status_code != 403:
            return False
        log.error("manager refused this node: %s", resp.text[:200])
        if self._on_rejected:
            self._on_rejected(resp.text)
        self._stop.set()
        return True

    def _heartbeats(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            body = HeartbeatRequest(
                node_id=self.identity.node_id,
                statuses=self._statuses(),
                applied_digest=self.applied_digest,
            )
            try:
                resp = self._http.post(
                    "/v1/dispatcher/heartbeat",
                    content=body.model_dump_json(),
                    timeout=5,
                    extensions=self._expect,
                )
                self._on_heartbeat("ok" if resp.status_code == 200 else "refused")
                if self._rejected(resp):
                    return
                if resp.status_code == 200:
                    answer = HeartbeatResponse.model_validate(resp.json())
                    self.period = answer.heartbeat_period
                    if answer.ca_digest:
                        self._on_ca_digest(answer.ca_digest)
            except httpx.TransportError as err:
                self._on_heartbeat("unreachable")
                log.warning("heartbeat to %s failed: %s", self.identity.manager_addr, err)
            self._wake.wait(self.period)

    def _assignments(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self._http.get(
                    "/v1/dispatcher/assignments",
                    params={"node_id": self.identity.node_id, "digest": self.applied_digest},
                    extensions=self._expect,
                )
                if self._rejected(resp):
                    return
                resp.raise_for_status()
                got = Assignments.model_validate_json(resp.content)
            except (httpx.HTTPError, ValueError) as err:
                log.warning("assignments from %s failed: %s", self.identity.manager_addr, err)
                self._stop.wait(1.0)
                continue
            if got.digest == self.applied_digest:
                continue
            state = self._state_of(got)
            if state is None:
                continue
            try:
                self._apply(state)
                self.applied_digest, self._applied = got.digest, state
            except Exception:
                log.exception("applying desired state version %s failed", state.version)
                self._stop.wait(1.0)
            self._wake.set()

    def _state_of(self, got: Assignments) -> NodeDesiredState | None:
        """The whole state `got` stands for; None (and the next poll asks for the whole
        state) when it is a patch of a state this session does not hold."""
        if got.patch is None:
            self._on_assignments("whole")
            return got.state
        if self._applied is not None and got.base == self.applied_digest:
            try:
                state = apply_patch(self._applied, got.patch)
                self._on_assignments("patch")
                return state
            except InvalidPatch as err:
                log.warning("patch to %s refused: %s", got.digest[:12], err)
        self._on_assignments("refused")
        self.applied_digest, self._applied = "", None
        return None
