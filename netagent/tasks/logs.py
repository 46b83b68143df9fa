"""Reading a task's log as its shim wrote it: docker's json-file lines, rotated by size.

The shim (netagent.tasks.shim) appends `{"log", "stream", "time"}` lines to
`logs/<task id>.log` and rotates it to `.1`, `.2`, ... (the highest the oldest). A reader
keeps the current file open: when the shim rotates, the open file is the one renamed
to `.1`, so the reader finishes it (and any file rotated after it) before it opens the
new one, and no line is read twice or lost at a rotation (unless more than max-file
rotations happen between two polls: those files are gone). A line the reader cannot
parse (written to the file by something else than the shim, e.g. `ip netns exec`
failing before the shim ran) is kept, as stdout with the time 0, rather than hidden.

`since` and `tail` are docker's: only lines at or after `since`, then the last `tail`
of those (per task, as docker applies them per container).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


@dataclass(frozen=True)
class LogEntry:
    """One line of a task's output."""

    time_ns: int
    stream: str  # "stdout" | "stderr"
    log: str  # with its newline, if it had one


def parse_time_ns(text: str) -> int:
    """An RFC 3339 UTC time as the shim writes it ('...T01:02:03.123456789Z'), in ns."""
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(f"invalid log time {text!r}: expected RFC 3339 UTC")
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def parse_entry(line: bytes) -> LogEntry:
    """One json-file line; a line that is not one is kept as it is (see module doc)."""
    try:
        obj = json.loads(line)
        return LogEntry(parse_time_ns(obj["time"]), str(obj["stream"]), str(obj["log"]))
    except (ValueError, KeyError, TypeError):
        return LogEntry(0, "stdout", line.decode("utf-8", errors="replace"))


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of `path` that exist, oldest first (path.N ... path.1)."""
    found = []
    n = 1
    while (older := Path(f"{path}.{n}")).exists():
        found.append(older)
        n += 1
    return list(reversed(found))


def select(entries: list[LogEntry], since_ns: int = 0, tail: int | None = None) -> list[LogEntry]:
    """Docker's `--since` then `--tail` (None: all)."""
    kept = [e for e in entries if e.time_ns >= since_ns] if since_ns else entries
    if tail is not None:
        kept = kept[-tail:] if tail else []
    return kept


class LogReader:
    """A task's log: what it holds now (`history`), then what is added (`poll`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._held = b""  # a last line the shim has not finished writing

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def history(self, since_ns: int = 0, tail: int | None = None) -> list[LogEntry]:
        """Every line kept so far (the rotated files, then the current one), selected."""
        self.close()
        self._held = b""
        self._open()  # first: a rotation from here on renames the file we hold
        entries: list[LogEntry] = []
        for older in rotated_files(self.path):
            with contextlib.suppress(FileNotFoundError), open(older, "rb") as f:
                entries.extend(parse_entry(line) for line in f if line.strip())
        entries.extend(self.poll())
        return select(entries, since_ns, tail)

    def poll(self) -> list[LogEntry]:
        """The whole lines written since the last call, across rotations."""
        if self._file is None and not self._open():
            return []
        assert self._file is not None
        lines = list(self._read_lines())
        if self._rotated():
            lines.extend(self._read_lines())  # the end of the file we held, now renamed
            held = os.fstat(self._file.fileno()).st_ino
            self._held = b""
            self.close()
            # Rotated more than once since the last poll: the files between ours and
            # the current one are read whole.
            older = rotated_files(self.path)
            inodes = [_inode(p) for p in older]
            for between in older[inodes.index(held) + 1 :] if held in inodes else []:
                with contextlib.suppress(FileNotFoundError), open(between, "rb") as f:
                    lines.extend(f.read().split(b"\n"))
            if self._open():
                lines.extend(self._read_lines())
        return [parse_entry(line) for line in lines if line.strip()]

    def _open(self) -> bool:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 (kept open across polls)
        except FileNotFoundError:
            return False
        return True

    def _read_lines(self) -> Iterator[bytes]:
        assert self._file is not None
        data = self._held + self._file.read()
        *whole, self._held = data.split(b"\n")
        yield from whole

    def _rotated(self) -> bool:
        assert self._file is not None
        try:
            return os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
        except FileNotFoundError:
            return False  # between the rename and the new file: seen at the next poll


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1
