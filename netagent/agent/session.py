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
that is away is retried, never fatal: each heartbeat answer lists the managers, the
leader first; the session goes to the leader, and to the next manager of the list when
its own stops answering.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable

import httpx

from netagent.agent.machine import machine_resources
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
#: Longest pause after an unexpected error in a session loop.
MAX_BACKOFF = 5.0
#: Longest a connection to a manager may take before the session tries another.
CONNECT_SECONDS = 2.0
#: Longest a waiting long-poll may stay silent (its manager sends a byte every second).
POLL_SILENCE = 5.0
#: The pause before the next heartbeat after one that found no manager.
RETRY_SECONDS = 0.5


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
        on_error: Callable[[str], None] | None = None,
        on_managers: Callable[[list[str], str], None] | None = None,
        on_role: Callable[[str, int], None] | None = None,
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
        #: Told the loop ("heartbeat", "assignments") of every unexpected error.
        self._on_error = on_error or (lambda _loop: None)
        #: Told (every manager, the one this session now talks to) when either changed.
        self._on_managers = on_managers or (lambda _managers, _target: None)
        #: Told the node's role from every heartbeat answer (a promotion, a demotion).
        self._on_role = on_role or (lambda _role, _epoch: None)
        self._managers = list(identity.managers) or [identity.manager_addr]
        self.target = identity.manager_addr
        self._tls = tls
        self._stop = threading.Event()
        self._wake = threading.Event()
        #: When a poll last confirmed the applied state current (monotonic; None: never).
        self._current_at: float | None = None
        self._threads: list[threading.Thread] = []
        self.applied_digest = ""
        #: The state of `applied_digest`: what the next patch is applied to.
        self._applied: NodeDesiredState | None = None
        self.period = identity.heartbeat_period
        self._http = self._client(tls)

    def _client(self, tls: ssl.SSLContext) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://{self.target}",
            verify=tls,
            # A manager whose machine is gone does not refuse: give up connecting soon
            # and try another.
            timeout=httpx.Timeout(LONG_POLL_SECONDS + 10, connect=CONNECT_SECONDS),
        )

    def use_tls(self, tls: ssl.SSLContext) -> None:
        """Talk with a renewed certificate (or new roots) from the next request on.

        A long-poll in flight on the old client fails and is simply polled again."""
        self._tls = tls
        old, self._http = self._http, self._client(tls)
        old.close()

    def _move_to(self, addr: str) -> None:
        """Talk to the manager at `addr` from the next request on."""
        if addr == self.target:
            return
        log.info("session moves from manager %s to %s", self.target, addr)
        self.target = addr
        old, self._http = self._http, self._client(self._tls)
        old.close()
        self._on_managers(list(self._managers), addr)

    def _learn_managers(self, managers: list[str]) -> None:
        """A heartbeat answer's managers (the leader first): go to the leader."""
        if not managers:
            return
        changed = managers != self._managers
        self._managers = list(managers)
        if managers[0] != self.target:
            self._move_to(managers[0])
        elif changed:
            self._on_managers(list(managers), self.target)

    def _next_manager(self) -> str:
        """The manager after the current one in the list (the current one if alone)."""
        if self.target not in self._managers:
            return self._managers[0]
        return self._managers[(self._managers.index(self.target) + 1) % len(self._managers)]

    def start(self) -> None:
        for step, name in ((self._heartbeat, "heartbeat"), (self._poll, "assignments")):
            t = threading.Thread(
                target=self._loop, args=(step, name), name=f"session-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _loop(self, step: Callable[[], bool], name: str) -> None:
        """Run `step` until stopped (or it says the session is over: False).

        Nothing may end a loop but that: an unexpected error is logged, counted and
        followed by a pause that doubles up to MAX_BACKOFF, so a node keeps heartbeating
        and polling whatever one bad answer or state did (a dead assignments thread
        beside live heartbeats would look Ready and apply nothing)."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not step():
                    return
                backoff = 0.5
            except Exception:
                log.exception("session %s loop failed; going on in %.1fs", name, backoff)
                self._on_error(name)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def state_age(self) -> float | None:
        """Seconds since a poll last found the applied state current or applied a new
        one (None before the first): the watchdog's figure, growing while nothing is
        applied, whether the manager is away or every state fails."""
        if self._current_at is None:
            return None
        return time.monotonic() - self._current_at

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

    def _heartbeat(self) -> bool:
        """One heartbeat, then the wait for the next; False once the manager refused us."""
        self._wake.clear()
        body = HeartbeatRequest(
            node_id=self.identity.node_id,
            statuses=self._statuses(),
            applied_digest=self.applied_digest,
            resources=machine_resources(),
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
                return False
            if resp.status_code == 200:
                answer = HeartbeatResponse.model_validate(resp.json())
                self.period = answer.heartbeat_period
                if answer.ca_digest:
                    self._on_ca_digest(answer.ca_digest)
                self._learn_managers(answer.managers)
                if answer.role:
                    self._on_role(answer.role, answer.role_epoch)
            elif resp.status_code == 503:
                # A manager without a leader to forward to, or one leaving: try another.
                self._move_to(self._next_manager())
        except httpx.TransportError as err:
            self._on_heartbeat("unreachable")
            log.warning("heartbeat to %s failed: %s", self.target, err)
            self._move_to(self._next_manager())
            self._wake.wait(min(self.period, RETRY_SECONDS))
            return True
        self._wake.wait(self.period)
        return True

    def _poll(self) -> bool:
        """One long-poll for assignments, applied if new; False once refused."""
        try:
            # Streamed: the manager sends a space every second while it waits, so a
            # manager that went silent is given up after POLL_SILENCE, not at the end of
            # the poll.
            with self._http.stream(
                "GET",
                "/v1/dispatcher/assignments",
                params={"node_id": self.identity.node_id, "digest": self.applied_digest},
                extensions=self._expect,
                timeout=httpx.Timeout(POLL_SILENCE, connect=CONNECT_SECONDS),
            ) as resp:
                resp.read()
            if self._rejected(resp):
                return False
            resp.raise_for_status()
            got = Assignments.model_validate_json(resp.content)
        except (httpx.HTTPError, ValueError) as err:
            log.warning("assignments from %s failed: %s", self.target, err)
            self._stop.wait(1.0)
            return True
        if got.digest == self.applied_digest:
            self._current_at = time.monotonic()
            return True
        state = self._state_of(got)
        if state is None:
            return True
        try:
            self._apply(state)
            self.applied_digest, self._applied = got.digest, state
            self._current_at = time.monotonic()
        except Exception:
            log.exception("applying desired state version %s failed", state.version)
            self._on_error("assignments")
            self._stop.wait(1.0)
        self._wake.set()
        return True

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
