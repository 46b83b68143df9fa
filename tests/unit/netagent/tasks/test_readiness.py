"""Readiness: a server task is RUNNING once its port listens (its own /proc view)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from netagent.contract.desired import TaskSpec
from netagent.tasks.readiness import ReadinessWatcher, listening
from netagent.tasks.workloads import ready_port


@pytest.mark.parametrize(
    ("image", "command", "port"),
    [
        ("whoami", (), 80),
        ("nginx:1.25", (), 80),
        ("slowreply", (), 8080),
        ("slowreply", ("--port", "9000"), 9000),
        ("whoami", ("--port=81", "-v"), 81),
        ("whoami", ("--port", "0"), None),  # any free port: nothing known to wait for
        ("whoami", ("sleep", "10"), None),  # program replaced
        ("alpine", ("sleep", "10"), None),
    ],
)
def test_ready_port_of_each_workload(image, command, port):
    assert ready_port(TaskSpec(image=image, command=command)) == port


def test_listening_sees_a_listening_socket_of_this_process_and_not_a_closed_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not listening(os.getpid(), port)  # bound is not listening
        s.listen()
        assert listening(os.getpid(), port)
    assert not listening(os.getpid(), port)


def test_listening_of_a_gone_process_is_false():
    assert not listening(2**22 + 12345, 80)


def test_the_watcher_calls_back_once_the_port_listens_or_at_its_deadline():
    calls: list[tuple[str, bool]] = []
    done = threading.Event()

    def on_ready(task_id: str, ok: bool) -> None:
        calls.append((task_id, ok))
        if len(calls) == 2:
            done.set()

    watcher = ReadinessWatcher(on_ready)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            watcher.watch("late", os.getpid(), 1, timeout=0.2)  # nothing on port 1
            watcher.watch("ready", os.getpid(), port, timeout=30)
            watcher.watch("forgotten", os.getpid(), port, timeout=30)
            watcher.forget("forgotten")
            s.listen()
            assert done.wait(10)
    finally:
        watcher.close()
    assert sorted(calls) == [("late", False), ("ready", True)]
