"""The data formats around capture and trace: the capture stream's lines, pcap files, nft's
JSON listing in short, conntrack entries, and the directory's lookups."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from ipaddress import IPv4Address

import pytest

from netagent.capture.facts import CtEntry, nft_table
from netagent.capture.sniffer import Frame
from netagent.capture.stream import End, Ready, _event, read_events, stream_capture
from netagent.contract.errors import InvalidArgument, NotFound
from orchestrator.cli.packets.pcap import PcapWriter
from tests.unit.orchestrator.cli.cluster_sample import DIRECTORY

IP4 = IPv4Address

VIP_TABLE = {
    "nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "vxswarm", "handle": 2}},
        {"map": {"family": "ip", "name": "vips", "table": "vxswarm", "type": "ipv4_addr",
                 "map": "verdict", "elem": [
                     [{"elem": {"val": "10.0.0.2", "comment": "vxswarm: web VIP 10.0.0.2"}},
                      {"jump": {"target": "svc-abc"}}],
                     [{"elem": {"val": "10.0.0.7", "comment": "vxswarm: none VIP"}},
                      {"jump": {"target": "svc-ghi"}}]]}},
        {"map": {"family": "ip", "name": "published", "table": "vxswarm",
                 "elem": [[{"concat": ["tcp", 8080]}, {"concat": ["172.18.0.2", 8080]}]]}},
        {"chain": {"family": "ip", "table": "vxswarm", "name": "svc-abc", "handle": 3}},
        {"chain": {"family": "ip", "table": "vxswarm", "name": "empty", "handle": 4}},
        {"rule": {"chain": "svc-abc", "comment": "vxswarm: web VIP 10.0.0.2 -> web.1, web.2",
                  "expr": [{"dnat": {"addr": {"map": {
                      "key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
                      "data": {"set": [[{"elem": {"val": 0}}, "10.0.0.4"],
                                       [{"elem": {"val": 1}}, "10.0.0.5"]]}}}}}]}},
        {"rule": {"chain": "svc-ghi", "expr": [{"reject": {"type": "icmp"}}]}},
    ]
}  # fmt: skip


def test_nft_listing_becomes_maps_and_dnat_targets_per_chain():
    table = nft_table(VIP_TABLE)
    assert table is not None
    assert table.maps == {
        "vips": {"10.0.0.2": "jump svc-abc", "10.0.0.7": "jump svc-ghi"},
        "published": {"tcp . 8080": "172.18.0.2 . 8080"},
    }
    (rule,) = table.chains["svc-abc"]
    assert rule.dnat == ("10.0.0.4", "10.0.0.5")
    assert rule.comment == "web VIP 10.0.0.2 -> web.1, web.2"
    assert table.chains["svc-ghi"][0].reject
    assert table.chains["empty"] == ()
    assert nft_table(None) is None


def test_conntrack_entry_tells_where_dnat_sent_the_probe():
    natted = CtEntry(proto=6, src="10.0.0.5", dst="10.0.0.2", sport=61000, dport=80,
                     reply_src="10.0.0.4", reply_dst="10.0.0.5", reply_sport=80,
                     reply_dport=61000)  # fmt: skip
    assert natted.dnat == ("10.0.0.4", 80)
    plain = natted.model_copy(update={"reply_src": "10.0.0.2"})
    assert plain.dnat is None


def test_capture_stream_lines_round_trip():
    frame = Frame(tap=1, ifname="vx-4097", outgoing=True, ts=12.5, data=b"\x01\x02")
    lines = [
        {"ready": {"taps": ["node/eth0"]}},
        json.loads(json.dumps(_event(frame))),
        _event(None),
        {"end": {"reason": "count", "captured": 1}},
        {"frame": {}},  # after the end: never read
    ]
    assert list(read_events(lines)) == [Ready(("node/eth0",)), frame, None, End("count", 1)]
    assert _event(frame)["frame"]["data"] == base64.b64encode(b"\x01\x02").decode()


def test_an_error_line_raises_its_class():
    line = _event(NotFound("no sandbox for VNI 4097 on this node"))
    with pytest.raises(NotFound, match="no sandbox for VNI 4097"):
        list(read_events([line]))


def test_pcap_file_has_the_ethernet_header_and_each_frame(tmp_path):
    path = tmp_path / "x.pcap"
    with PcapWriter(path) as w:
        w.write(1700000000.25, b"abc")
    data = path.read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, 65535, 1)
    assert struct.unpack("<IIII", data[24:40]) == (1700000000, 250000, 3, 3)
    assert data[40:] == b"abc"


def test_pcap_to_an_unwritable_place_is_one_clear_error(tmp_path):
    with (
        pytest.raises(InvalidArgument, match="cannot write capture file"),
        PcapWriter(tmp_path / "missing" / "x.pcap"),
    ):
        pass


def test_directory_names_addresses_per_network_and_nodes_by_address():
    assert DIRECTORY.name_of(IP4("10.0.0.2"), 4097) == "web VIP"
    assert DIRECTORY.name_of(IP4("10.255.0.5")) == "web VIP"
    assert DIRECTORY.name_of(IP4("10.255.0.3"), 4096) == "ingress-sbox@worker1"
    assert DIRECTORY.name_of(IP4("10.0.0.1"), 4097) == "webnet gateway"
    assert DIRECTORY.name_of(IP4("192.168.56.12")) == "worker1"
    assert DIRECTORY.name_of(IP4("10.0.0.99"), 4097) == ""
    assert DIRECTORY.task("web.2").node_id == "n3"
    assert DIRECTORY.task("bbbbbb").name == "web.2"  # an id prefix


def test_directory_lookups_name_what_exists():
    with pytest.raises(NotFound, match="no node 'x': expected one of manager1, worker1, worker2"):
        DIRECTORY.node("x")
    with pytest.raises(NotFound, match="no network 'x': expected one of ingress, webnet"):
        DIRECTORY.network("x")


class _Burst:
    """A capture that saw `n` frames at once (the producer side of stream_capture)."""

    def __init__(self, n: int):
        self.n, self.taps, self.reason, self.captured = n, [], "count", 0

    def frames(self):
        for i in range(self.n):
            self.captured += 1
            yield Frame(0, "eth0", False, float(i), b"x")

    def stop(self) -> None: ...

    def close(self) -> None: ...


def test_a_slow_reader_makes_the_node_drop_and_count_frames_not_grow():
    lines: list[dict] = []

    async def slow_write(data: bytes) -> None:
        lines.append(json.loads(data))
        await asyncio.sleep(0.005)

    asyncio.run(stream_capture(_Burst(200), slow_write, queue_frames=8))
    events = list(read_events(lines))
    frames = [e for e in events if isinstance(e, Frame)]
    (end,) = [e for e in events if isinstance(e, End)]
    assert end.captured == 200 and end.dropped > 0
    assert len(frames) + end.dropped == 200
