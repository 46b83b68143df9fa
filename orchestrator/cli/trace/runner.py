"""Running a trace: the I/O around the pure plan and judgement.

Steps, all through the manager's API (so it works against remote nodes):
  1. the directory (who owns which address) and the plan;
  2. for a service name, the sender's resolver is asked (on the sender's node);
  3. captures start on every node of the plan, filtered on the probe's id, one
     streaming request per node in its own thread (and, for `client`, one socket in
     this process); the probe goes only once every capture reported ready;
  4. the probe is sent from the sender (its node's agent, or this process for
     `client`); frames are collected until the sender saw the reply, or `window`
     seconds, plus a short grace for the other nodes' streams;
  5. each node's facts (links, FDB, neighbours, nft, conntrack) and desired state
     are read, and `hops.judge` explains what happened.
Captures are always stopped: a thread leaves its stream at the next line (a frame
or the half-second tick), which closes the request and the node's sockets.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address

from netagent.capture import probe
from netagent.capture.facts import NsFacts
from netagent.capture.points import Point, PointKind
from netagent.capture.sniffer import Capture, Frame, Tap
from netagent.capture.stream import End, Ready, read_events
from netagent.contract.desired import NodeDesiredState
from netagent.contract.errors import Unavailable, VxswarmError
from orchestrator.cli.packets import filters
from orchestrator.cli.trace.hops import Evidence, Report, judge
from orchestrator.cli.trace.legs import Leg, observe
from orchestrator.cli.trace.plan import DestKind, Plan, SourceKind, plan, split_dest
from orchestrator.cluster.directory import Directory
from orchestrator.node.client import Client

READY_TIMEOUT = 15.0
#: Longest a capture may run on a node, whatever happens to this process.
CAPTURE_LIMIT = 60.0
#: After the reply reached the sender: time for the other nodes' frames to arrive.
GRACE = 0.5
_DONE = object()


def run_trace(
    c: Client, from_ref: str, dest_text: str, proto: str | None, window: float = 3.0
) -> tuple[Plan, Report]:
    """Trace one probe from `from_ref` to `dest_text`; the plan and the judged report."""
    directory = Directory.model_validate(c.get("/v1/debug/directory"))
    _, port = split_dest(dest_text)
    ident = probe.ProbeSpec.new_ident(proto or ("tcp" if port is not None else "icmp"))
    p = plan(directory, from_ref, dest_text, proto, ident)
    ev = Evidence(plan=p, directory=directory, seen=[])
    dst = p.dest.ip
    if p.dest.kind == DestKind.SERVICE:
        p, dst = _resolve(c, directory, p, ev, from_ref, port)
        if dst is None:
            return p, judge(ev)
    assert dst is not None
    ev.dst = dst
    spec = p.probe(dst)
    with _Captures(c, p, filters.probe(p.proto, ident)) as caps:
        caps.wait_ready()
        try:
            ev.route = _send(c, p, spec)
        except VxswarmError as exc:
            ev.probe_error = str(exc)
        caps.collect(ev, window)
    for node_id, points in p.points.items():
        ev.facts[node_id] = _facts(c, node_id, points, spec)
        ev.desired[node_id] = NodeDesiredState.model_validate(c.get(f"/v1/debug/desired/{node_id}"))
    return p, judge(ev)


def _resolve(
    c: Client, directory: Directory, p: Plan, ev: Evidence, from_ref: str, port: int | None
) -> tuple[Plan, IPv4Address | None]:
    """Ask the sender's resolver; a name answered with task addresses (dnsrr) is then
    traced to the first of them."""
    task, node = p.source.task, p.source.node
    assert task is not None and node is not None
    body = {"task_id": task.id, "name": p.dest.host}
    ev.dns = probe.DnsAnswer.model_validate(c.post(f"/v1/debug/nodes/{node.id}/dns", body))
    if not ev.dns.addresses:
        return p, None
    dst = ev.dns.addresses[0]
    svc = p.dest.service
    if svc is not None and dst not in svc.vips.values():
        target = f"{dst}:{port}" if port is not None else str(dst)
        p = plan(directory, from_ref, target, p.proto, p.ident)
        ev.plan = p
    return p, dst


def _send(c: Client, p: Plan, spec: probe.ProbeSpec) -> probe.Route:
    if p.source.kind == SourceKind.CLIENT:
        return probe.send(None, spec)
    assert p.source.node is not None
    if p.source.task is not None:
        point = Point(kind=PointKind.TASK, task_id=p.source.task.id)
    else:
        point = Point(kind=PointKind.NODE)
    body = {"point": point.model_dump(mode="json"), "probe": spec.model_dump(mode="json")}
    return probe.Route.model_validate(c.post(f"/v1/debug/nodes/{p.source.node.id}/probe", body))


def _facts(
    c: Client, node_id: str, points: tuple[Point, ...], spec: probe.ProbeSpec
) -> dict[Point, NsFacts]:
    body = {
        "points": [x.model_dump(mode="json") for x in points],
        "probe": spec.model_dump(mode="json"),
    }
    got = c.post(f"/v1/debug/nodes/{node_id}/facts", body)
    return {x: NsFacts.model_validate(f) for x, f in zip(points, got, strict=True)}


class _Captures:
    """One capture per node of the plan (and the client's own), feeding one queue."""

    def __init__(self, c: Client, p: Plan, bpf: str) -> None:
        self.c, self.p, self.bpf = c, p, bpf
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ready: set[str | None] = set()
        self.local: Capture | None = None

    def __enter__(self) -> _Captures:
        try:
            for node_id, points in self.p.points.items():
                self._start(lambda n=node_id, pts=points: self._remote(n, pts))
            if self.p.source.kind == SourceKind.CLIENT:
                self.local = Capture([Tap(None, None, "client")], self.bpf).open()
                self.ready.add(None)
                self._start(self._client)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, body: Callable[[], None]) -> None:
        t = threading.Thread(target=body, daemon=True)
        t.start()
        self.threads.append(t)

    def _remote(self, node_id: str, points: tuple[Point, ...]) -> None:
        body = {
            "points": [x.model_dump(mode="json") for x in points],
            "filter": self.bpf,
            "timeout": CAPTURE_LIMIT,
            "skip_missing": True,  # a missing sandbox is a finding: the facts name it
        }
        try:
            with Client(self.c.endpoint) as c:
                lines = c.stream(f"/v1/debug/nodes/{node_id}/capture", body)
                try:
                    for event in read_events(lines):
                        self.events.put((node_id, event))
                        if self.stop.is_set():
                            break
                finally:
                    lines.close()  # leaves the HTTP stream: the node closes its sockets
        except VxswarmError as exc:
            self.events.put((node_id, exc))
        finally:
            self.events.put((node_id, _DONE))

    def _client(self) -> None:
        assert self.local is not None
        try:
            for frame in self.local.frames():
                if frame is not None:
                    self.events.put((None, frame))
        finally:
            self.events.put((None, _DONE))

    def wait_ready(self) -> None:
        """Block until every node's capture is open; the first error is raised."""
        deadline = time.monotonic() + READY_TIMEOUT
        while len(self.ready) < len(self.threads):
            try:
                node_id, event = self._next(deadline - time.monotonic())
            except queue.Empty:
                raise Unavailable(
                    f"captures not ready after {READY_TIMEOUT:g}s on "
                    + ", ".join(n for n in self.p.points if n not in self.ready)
                ) from None
            if isinstance(event, Ready):
                self.ready.add(node_id)
            elif isinstance(event, BaseException):
                raise event
            elif event is _DONE:
                raise Unavailable(f"the capture on node {node_id} ended before it was ready")

    def collect(self, ev: Evidence, window: float) -> None:
        """Observe the probe until the sender got its reply (plus GRACE) or `window` ends."""
        p = ev.plan
        deadline = time.monotonic() + window
        sender = None if p.source.kind == SourceKind.CLIENT else p.source.node
        sender_id = sender.id if sender is not None else None
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                node_id, event = self._next(left)
                if isinstance(event, Frame):
                    pts = p.points.get(node_id, ()) if node_id is not None else ()
                    seen = observe(node_id, pts, event, p.proto, p.ident)
                    if seen is None:
                        continue
                    ev.seen.append(seen)
                    at_sender = node_id == sender_id and (p.mesh or seen.kind != PointKind.SANDBOX)
                    if seen.leg == Leg.REPLY and not seen.outgoing and at_sender:
                        deadline = min(deadline, time.monotonic() + GRACE)

    def _next(self, timeout: float) -> tuple[str | None, object]:
        if timeout <= 0:
            raise queue.Empty
        node_id, event = self.events.get(timeout=timeout)
        if isinstance(event, End):
            return node_id, _DONE
        return node_id, event

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.local is not None:
            self.local.stop()
        for t in self.threads:
            t.join(timeout=5)
        if self.local is not None:
            self.local.close()
