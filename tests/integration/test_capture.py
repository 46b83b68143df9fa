"""Capturing for real: packet sockets, probes and kernel facts in test namespaces; then
`vxswarm capture` on a 3-node lab: the underlay's VXLAN decoded and named from the
manager's view, a task's own interface, pcap files tshark decodes, refused bad input."""

from __future__ import annotations

import subprocess
import threading
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from netagent.capture import facts, probe
from netagent.capture.sniffer import Capture, Tap, open_tap
from netagent.contract.errors import KernelError
from netagent.lab.driver import VXSWARM, SwarmLab, running_lab, wait_for
from orchestrator.cli.packets import filters
from tests.integration.conftest import run_in

pytestmark = [pytest.mark.root]
SLEEPER = ("alpine", "sleep", "600")


def frames_of(cap: Capture, until: int) -> list:
    """Frames of an open capture until `until` arrived (its timeout bounds the wait)."""
    got = []
    for frame in cap.frames():
        if frame is not None:
            got.append(frame)
            if len(got) == until:
                break
    return got


def test_a_tap_on_an_interface_sees_both_directions_filtered(node_pair):
    a, b = node_pair
    with Capture([Tap(b.ns, "eth0", "b")], bpf="icmp", timeout=10) as cap:
        run_in(a.ns, "ping", "-c1", "-W2", str(b.ip))
        got = frames_of(cap, 2)
    assert [(f.ifname, f.outgoing) for f in got] == [("eth0", False), ("eth0", True)]
    assert all(f.data[23] == 1 for f in got)  # IPv4 protocol ICMP: the filter held


def test_a_probe_leaves_its_namespace_and_its_reply_is_seen_there(node_pair):
    a, b = node_pair
    spec = probe.ProbeSpec(proto="tcp", dst=b.ip, port=9, ident=61999)
    with Capture([Tap(a.ns, None, "a")], bpf=filters.probe("tcp", 61999), timeout=10) as cap:
        route = probe.send(a.ns, spec)
        got = frames_of(cap, 2)
    assert (route.iface, route.src) == ("eth0", a.ip)
    out, back = got
    assert out.outgoing and not back.outgoing
    assert out.data[34:36] == (61999).to_bytes(2, "big")  # TCP source port: the probe id
    assert back.data[47] & 0x04  # nothing listens on port 9: a reset came back


def test_facts_show_links_the_nft_table_and_the_probes_dnat(node_pair):
    a, b = node_pair
    # UDP: a TCP probe's entry dies with the reset that answers it.
    rule = f"udp dport 8080 dnat to {b.ip}:9"
    run_in(b.ns, "nft", "add table ip vxswarm; add chain ip vxswarm pre { type nat hook "
           f"prerouting priority dstnat; }}; add rule ip vxswarm pre {rule}")  # fmt: skip
    spec = probe.ProbeSpec(proto="udp", dst=b.ip, port=8080, ident=61998)
    probe.send(a.ns, spec)
    seen = wait_for("the probe's conntrack entry", lambda: facts.read_ns(b.ns, spec).conntrack)
    (entry,) = seen
    assert (entry.src, entry.sport, entry.dnat) == (str(a.ip), 61998, (str(b.ip), 9))
    got = facts.read_ns(b.ns, spec)
    eth0 = got.link("eth0")
    assert eth0 is not None and eth0.up and eth0.kind == "veth"
    assert got.nft is not None and got.nft.chains["pre"][0].dnat == (str(b.ip),)
    assert got.neigh["eth0"] == {str(a.ip): _mac(a.ns)}
    assert facts.read_ns(a.ns, spec).nft is None


def _mac(ns: str) -> str:
    return run_in(ns, "cat", "/sys/class/net/eth0/address").stdout.strip()


def test_a_tap_on_a_missing_interface_is_a_kernel_error_naming_it(node_pair):
    a, _ = node_pair
    with pytest.raises(KernelError, match=f"open capture {a.ns}/nosuch: No such device"):
        open_tap(Tap(a.ns, "nosuch", "x"), None)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


def ip_on_webnet(task: dict, lab: SwarmLab) -> str:
    nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == "webnet")
    return str(
        next(IPv4Interface(a["address"]).ip for a in task["attachments"] if a["network_id"] == nid)
    )


class Capturing:
    """`vxswarm capture ...` running in the background; its stderr read as it comes."""

    def __init__(self, lab: SwarmLab, *args: str) -> None:
        env = {**lab.env, "VXSWARM_HOST": lab.socket("manager1")}
        self.proc = subprocess.Popen(
            [*VXSWARM, "capture", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read_err, daemon=True)
        self._reader.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def __enter__(self) -> Capturing:
        wait_for("capture ready", lambda: any("capturing on" in ln for ln in self.err) or
                 self.proc.poll() is not None, timeout=20)  # fmt: skip
        assert self.proc.poll() is None, "".join(self.err)
        return self

    def finish(self, timeout: float = 30) -> list[str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # until the capture ends (its own --timeout bounds it)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, "".join(self.err)
        return out.splitlines()

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.lab
def test_underlay_capture_shows_a_ping_between_nodes_with_vni_and_task_names(lab, tmp_path):
    with lab.service("cap", "--network", "webnet", *SLEEPER, replicas=3) as tasks:
        names = lab.hostnames()
        src = tasks[0]
        dst = next(t for t in tasks if t["node_id"] != src["node_id"])
        src_node, dst_node = names[src["node_id"]], names[dst["node_id"]]
        src_ip, dst_ip = ip_on_webnet(src, lab), ip_on_webnet(dst, lab)
        pcap = tmp_path / "underlay.pcap"
        args = ("--node", dst_node, "--network", "webnet", "-c", "4", "--timeout", "20")
        with Capturing(lab, *args, "-w", str(pcap)) as cap:
            lab.run("exec", f"cap.{src['slot']}", "ping", "-c2", "-i0.3", dst_ip, check=True)
            lines = cap.finish()
        src_name, dst_name = f"cap.{src['slot']}", f"cap.{dst['slot']}"
        request = (
            f"{src_node} → {dst_node}  vni 4097 (webnet)  "
            f"{src_ip} {src_name} → {dst_ip} {dst_name}  ICMP echo request"
        )
        reply = (
            f"{dst_node} → {src_node}  vni 4097 (webnet)  "
            f"{dst_ip} {dst_name} → {src_ip} {src_name}  ICMP echo reply"
        )
        assert any(request in ln and " eth0 In " in ln for ln in lines), lines
        assert any(reply in ln and " eth0 Out " in ln for ln in lines), lines
        assert len(lines) == 4
        assert tshark_fields(pcap, "vxlan.vni") == ["4097"] * 4
        inner = tshark_fields(pcap, "ip.src")
        assert f"192.168.56.{11 + lab.nodes.index(src_node)},{src_ip}" in inner


@pytest.mark.lab
def test_task_capture_sees_its_own_interface_traffic(lab):
    with lab.service("tc", "--network", "webnet", *SLEEPER, replicas=2) as tasks:
        a, b = sorted(tasks, key=lambda t: t["slot"])
        b_ip = ip_on_webnet(b, lab)
        with Capturing(lab, "--task", "tc.1", "--network", "webnet", "--filter", "icmp",
                       "-c", "2", "--timeout", "20") as cap:  # fmt: skip
            lab.run("exec", "tc.1", "ping", "-c1", b_ip, check=True)
            lines = cap.finish()
        a_ip = ip_on_webnet(a, lab)
        assert [ln.split("  ", 1)[1] for ln in lines] == [
            f"{a_ip} tc.1 → {b_ip} tc.2  ICMP echo request id {_icmp_id(lines[0])} seq 1",
            f"{b_ip} tc.2 → {a_ip} tc.1  ICMP echo reply id {_icmp_id(lines[0])} seq 1",
        ]
        assert " eth0 Out" in lines[0] and " eth0 In " in lines[1]


@pytest.mark.lab
def test_capture_ends_at_its_timeout_with_nothing_seen(lab):
    with Capturing(lab, "--node", "worker1", "--vni", "4321", "--timeout", "1") as cap:
        assert cap.finish() == []
    assert "0 packets captured" in "".join(cap.err)


@pytest.mark.lab
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--node", "nosuch"), "no node 'nosuch': expected one of manager1, worker1, worker2"),
        (("--task", "nosuch.1"), "no running task 'nosuch.1'"),
        (("--node", "worker1", "--filter", "tcp prt 80"), "invalid capture filter 'tcp prt 80'"),
        (("--node", "worker1", "--network", "nonet"), "no network 'nonet'"),
        (("--node", "worker1", "--task", "x.1"), "give exactly one of --node NODE or --task TASK"),
    ],
)
def test_bad_capture_input_is_one_clear_line(lab, args, message):
    res = lab.run("capture", *args, "--timeout", "1")
    assert res.code != 0
    assert message in res.err and res.err.count("\n") == 1, res.err


def tshark_fields(pcap: Path, field: str) -> list[str]:
    res = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", field],
        capture_output=True,
        text=True,
        check=True,
    )
    return [ln for ln in res.stdout.splitlines() if ln]


def _icmp_id(line: str) -> str:
    return line.split(" id ", 1)[1].split()[0]
