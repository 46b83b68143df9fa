"""`vxswarm capture` and `vxswarm trace`: flags, calls and printing only.

The capturing happens on the node (netagent.capture, through the API); the trace's
work is orchestrator.cli.trace. This module turns flags into requests and results into
lines.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from netagent.capture.points import Point, PointKind
from netagent.capture.sniffer import compile_bpf
from netagent.capture.stream import End, Ready, read_events
from netagent.contract.errors import InvalidArgument
from orchestrator.cli.common import api
from orchestrator.cli.packets import filters
from orchestrator.cli.packets.pcap import PcapWriter
from orchestrator.cluster.directory import Directory, DirTask


@click.command()
@click.option("--node", "node_ref", help="Capture on this node's underlay (VXLAN, decoded).")
@click.option("--task", "task_ref", help="Capture inside this task's namespace (web.1 or an id).")
@click.option("--network", "network_ref", help="Only this overlay network.")
@click.option("--vni", type=click.IntRange(1, 16777215), help="Only this VNI.")
@click.option("--filter", "bpf", default="", help="pcap-filter expression (outer on --node).")
@click.option("-c", "--count", type=click.IntRange(min=0), default=0, help="Stop after COUNT.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0.0, help="Stop after S seconds.")
@click.option(
    "-w", "write", type=click.Path(dir_okay=False, path_type=Path), help="Also write a pcap file."
)
def capture(
    node_ref: str | None,
    task_ref: str | None,
    network_ref: str | None,
    vni: int | None,
    bpf: str,
    count: int,
    timeout: float,
    write: Path | None,
) -> None:
    """Capture packets on a node's underlay or in a task, named from the cluster's view."""
    if (node_ref is None) == (task_ref is None):
        raise click.UsageError("give exactly one of --node NODE or --task TASK")
    if bpf:
        compile_bpf(bpf)  # refused here, naming the user's own expression
    c = api()
    directory = Directory.model_validate(c.get("/v1/debug/directory"))
    if network_ref is not None:
        net_vni = directory.network(network_ref).vni
        if vni is not None and vni != net_vni:
            raise InvalidArgument(f"--vni {vni} is not network {network_ref} (VNI {net_vni})")
        vni = net_vni
    if node_ref is not None:
        node = directory.node(node_ref)
        point = Point(kind=PointKind.UNDERLAY)
        bpf = filters.combine(filters.vxlan(vni), bpf)
    else:
        task = directory.task(task_ref or "")
        node = directory.node(task.node_id or "")
        point = Point(kind=PointKind.TASK, task_id=task.id, iface=_task_iface(directory, task, vni))
    body = {"points": [point.model_dump()], "filter": bpf, "count": count, "timeout": timeout}
    lines = c.stream(f"/v1/debug/nodes/{node.id}/capture", body)
    seen = dropped = 0
    # scapy (behind decode and packet_line) costs ~30 MB and a second of start-up: only
    # the commands that decode packets pay for it, not every vxswarm call or the daemon.
    from orchestrator.cli.packets.decode import decode
    from orchestrator.cli.packets.describe import packet_line, timestamp

    with PcapWriter(write) if write else _NoWriter() as pcap, contextlib.closing(lines):
        try:
            for ev in read_events(lines):
                if isinstance(ev, Ready):
                    where = f"{node.hostname} {'underlay' if node_ref else task_ref}"
                    click.echo(f"capturing on {where} ({', '.join(ev.taps)})"
                               + (f", filter: {bpf}" if bpf else ""), err=True)  # fmt: skip
                elif isinstance(ev, End):
                    dropped = ev.dropped
                    break
                elif ev is not None:
                    seen += 1
                    pcap.write(ev.ts, ev.data)
                    way = "Out" if ev.outgoing else "In"
                    line = packet_line(decode(ev.data), directory, vni)
                    click.echo(f"{timestamp(ev.ts)} {ev.ifname} {way}  {line}")
        except KeyboardInterrupt:
            pass
    click.echo(f"{seen} packet{'s' if seen != 1 else ''} captured", err=True)
    if dropped:
        click.echo(f"{dropped} packet{'s' if dropped != 1 else ''} dropped by the node "
                   "(the capture was read too slowly)", err=True)  # fmt: skip


def _task_iface(directory: Directory, task: DirTask, vni: int | None) -> str | None:
    """The task's interface on the network of `vni` (eth<n> in attachment order)."""
    if vni is None:
        return None
    for index, a in enumerate(task.attachments):
        net = next((n for n in directory.networks if n.id == a.network_id), None)
        if net is not None and net.vni == vni:
            return f"eth{index}"
    raise InvalidArgument(f"task {task.name} is not on VNI {vni}: expected one of its networks")


class _NoWriter:
    def __enter__(self) -> _NoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, ts: float, data: bytes) -> None:
        return None


@click.command()
@click.argument("source", metavar="FROM")
@click.argument("dest", metavar="DEST[:PORT]")
@click.option(
    "--proto",
    type=click.Choice(["tcp", "udp", "icmp"]),
    help="Default: tcp with a port, icmp without.",
)
@click.option(
    "--timeout", "window", type=click.FloatRange(0.5, 30), default=3.0, show_default=True,
    help="Seconds to wait for the reply.",
)  # fmt: skip
def trace(source: str, dest: str, proto: str | None, window: float) -> None:
    """Send one probe from FROM (a task, a node or 'client') to DEST (a service, VIP, task,
    NODE:PORT or address) and show every hop it crossed; where it vanished, what is missing."""
    from orchestrator.cli.trace.runner import run_trace  # scapy: see capture

    p, report = run_trace(api(), source, dest, proto, window)
    click.echo(f"trace {p.source.label} → {dest} ({p.proto}, probe id {p.ident})")
    for i, hop in enumerate(report.hops, 1):
        click.echo(f"{i:>2} {'✓' if hop.ok else '✗'} {hop.title}")
        if hop.detail:
            click.echo(f"     {hop.detail}")
    click.echo(report.outcome)
    if not report.ok:
        raise SystemExit(1)
