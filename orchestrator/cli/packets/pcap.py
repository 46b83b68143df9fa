"""Writing captured frames as a classic pcap file (what tcpdump -w writes).

Link type Ethernet: every tap vxswarm opens sees Ethernet frames (loopback frames
carry a zeroed Ethernet header on Linux), so tshark decodes the whole stack, VXLAN
included (UDP 4789 is its default port). Each frame is flushed as it is written, so
a capture cut short still leaves a readable file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from netagent.contract.errors import InvalidArgument

MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535


class PcapWriter:
    """Appends frames to a new pcap file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = None

    def __enter__(self) -> PcapWriter:
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        except OSError as exc:
            raise InvalidArgument(
                f"cannot write capture file {str(self.path)!r}: {exc.strerror}",
                obj=str(self.path),
                op="capture",
            ) from None
        self._file.write(struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        return self

    def write(self, ts: float, data: bytes) -> None:
        assert self._file is not None, "PcapWriter used outside its with block"
        sec = int(ts)
        usec = min(int(round((ts - sec) * 1_000_000)), 999_999)
        self._file.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
        self._file.write(data)
        self._file.flush()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
