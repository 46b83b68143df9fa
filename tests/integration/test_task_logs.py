"""A task's output through its shim: docker's json-file lines (the line, its stream, its
time), rotated by size as json-file does, read back across rotations (a follower woken
by inotify), and a workload's orphan holding the pipe open does not hold its exit
report back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from netagent.kernel.inotify import DirWatch
from netagent.tasks.logs import LogReader
from netagent.tasks.shim import RotatingLog

pytestmark = [pytest.mark.root]


def _shim(tmp_path, script: str, **log) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "netagent.tasks.shim", "--hostname", "logtest",
            "--exit-file", str(tmp_path / "exit.json"), "--log-file", str(tmp_path / "task.log"),
            *(f"--log-{k.replace('_', '-')}={v}" for k, v in log.items()),
            "--", "sh", "-c", script]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=30)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_chatty_task_keeps_max_files_of_max_size(tmp_path):
    lines = "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); done"
    done = _shim(tmp_path, lines, max_size=1000, max_files=3)
    assert done.returncode == 0, done.stderr
    logs = sorted(p.name for p in tmp_path.glob("task.log*"))
    assert logs == ["task.log", "task.log.1", "task.log.2"]
    assert all((tmp_path / n).stat().st_size <= 1000 for n in logs)
    assert _lines(tmp_path / "task.log")[-1]["log"] == "line399\n"
    # Nothing lost between the files kept: they hold the last lines in order, whole
    # JSON lines each (a rotation never splits one), and the reader reads them so.
    kept = [e["log"] for n in reversed(logs) for e in _lines(tmp_path / n)]
    assert kept == [f"line{i}\n" for i in range(400 - len(kept), 400)]
    with LogReader(tmp_path / "task.log") as reader:
        assert [e.log for e in reader.history()] == kept
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 0


def test_each_line_carries_its_stream_and_the_time_it_came(tmp_path):
    before = time.time_ns()
    done = _shim(tmp_path, "echo out; echo err >&2; sleep 0.3; printf 'no newline'")
    after = time.time_ns()
    assert done.returncode == 0, done.stderr
    with LogReader(tmp_path / "task.log") as reader:
        entries = reader.history()
    assert [(e.stream, e.log) for e in entries] == [
        ("stdout", "out\n"),
        ("stderr", "err\n"),
        ("stdout", "no newline"),  # held until the workload ended, then written as it is
    ]
    times = [e.time_ns for e in entries]
    assert before <= times[0] <= times[1] < times[2] <= after
    assert times[2] - times[1] >= 300_000_000  # the sleep is between them


def test_an_orphan_holding_the_output_does_not_hold_the_exit(tmp_path):
    began = time.monotonic()
    done = _shim(tmp_path, "sleep 20 & echo started; exit 3")
    assert done.returncode == 3
    assert time.monotonic() - began < 10
    assert [e["log"] for e in _lines(tmp_path / "task.log")] == ["started\n"]


def test_one_file_kept_starts_it_again_past_the_size(tmp_path):
    log = RotatingLog(str(tmp_path / "one.log"), max_size=10, max_files=1)
    log.write(b"0123456789")
    log.write(b"abc")
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.log"]
    assert (tmp_path / "one.log").read_bytes() == b"abc"


def test_a_follower_is_woken_by_the_kernel_when_a_log_changes(tmp_path):
    async def run() -> list[bool]:
        with DirWatch([tmp_path]) as changes:
            quiet = await changes.changed(0.1)
            (tmp_path / "task.log").write_bytes(b"line\n")
            written = await changes.changed(30)
            again = await changes.changed(0.1)  # the one change woke it once
            (tmp_path / "task.log").unlink()
            deleted = await changes.changed(30)
        return [quiet, written, again, deleted]

    assert asyncio.run(run()) == [False, True, False, True]
