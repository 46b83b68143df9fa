"""Built-in workloads as real processes on real sockets.

Graceful-stop tests run on 127.0.0.1 (no root needed). The `root` tests run
whoami the way the agent does (argv from `resolve`, env from `environment`) in
a namespace pair this test builds: a task netns with its own UTS namespace and
a client netns, joined by a veth pair created inside the task netns, so no
link ever exists in the host's root namespace.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from netagent.contract.desired import TaskAssignment
from netagent.tasks.workloads import environment, resolve
from tests import factories

DEADLINE = 15.0
TASK_ID = "3f2a9c1b7d4e5f60718293a4b5c6d7e8"


class Workload:
    """A workload process whose stderr lines are collected as they arrive."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, pattern: str) -> re.Match[str]:
        """The first stderr line (old or new) matching `pattern`, within the deadline."""
        rx = re.compile(pattern)
        for line in self.seen:
            if m := rx.search(line):
                return m
        end = time.monotonic() + DEADLINE
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if m := rx.search(line):
                return m
        raise AssertionError(f"no stderr line matching {pattern!r}; got {self.seen!r}")

    def stop(self) -> None:
        # Teardown: the process is ours, killed by its recorded pid.
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)


@pytest.fixture
def workloads() -> Iterator[list[Workload]]:
    started: list[Workload] = []
    yield started
    for w in started:
        w.stop()


def start(workloads: list[Workload], argv: list[str], env: dict[str, str] | None = None):
    w = Workload(argv, env)
    workloads.append(w)
    return w


def module_argv(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"netagent.tasks.workloads.{name}", *args]


def http_get(host: str, port: int, path: str = "/", timeout: float = DEADLINE) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def connect_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # A SYN racing the listener's shutdown is reset rather than refused: not served,
        # but not yet the steady state either, so keep polling.
        return False
    return False


def poll(check, what: str):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_slowreply_on_sigterm_refuses_new_connections_finishes_in_flight_and_exits_0(workloads):
    w = start(
        workloads,
        module_argv("slowreply", "--host", "127.0.0.1", "--port", "0", "-v", "--delay", "3"),
    )
    port = int(w.wait_line(r"listening on 127\.0\.0\.1:(\d+)")[1])
    result: dict[str, bytes | Exception] = {}
    done = threading.Event()

    def client() -> None:
        try:
            result["reply"] = http_get("127.0.0.1", port)
        except Exception as exc:  # reported by the assertions below
            result["reply"] = exc
        done.set()

    threading.Thread(target=client, daemon=True).start()
    w.wait_line(r"received GET / from 127\.0\.0\.1:")
    w.proc.send_signal(signal.SIGTERM)

    poll(lambda: connect_refused(port), "new connections to be refused")
    refused_while_in_flight = not done.is_set()
    assert done.wait(DEADLINE)
    reply = result["reply"]
    assert isinstance(reply, bytes), reply
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK")
    stamp = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert re.fullmatch(stamp + b"," + stamp + b"\n", body), body
    assert refused_while_in_flight, "the listener stayed open until the request finished"
    assert w.proc.wait(timeout=DEADLINE) == 0
    w.wait_line(r" 127\.0\.0\.1:\d+ GET / 200 \d+$")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_whoami_exits_0_on_stop_signal(workloads, sig):
    w = start(workloads, module_argv("whoami", "--host", "127.0.0.1", "--port", "0"))
    w.wait_line(r"listening on 127\.0\.0\.1:\d+")
    w.proc.send_signal(sig)
    assert w.proc.wait(timeout=DEADLINE) == 0
    w.wait_line(r"whoami: stopped")


def test_whoami_answers_garbage_with_400_and_keeps_serving(workloads):
    w = start(workloads, module_argv("whoami", "--host", "127.0.0.1", "--port", "0"))
    port = int(w.wait_line(r"listening on 127\.0\.0\.1:(\d+)")[1])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 400 Bad Request")
    reply = http_get("127.0.0.1", port, "/again")
    assert reply.startswith(b"HTTP/1.0 200 OK")
    assert b"\r\n\r\nI am " in reply
    assert b"GET /again HTTP/1.1\n" in reply
    w.wait_line(r"127\.0\.0\.1:\d+ - - 400")


def test_workload_that_cannot_listen_says_why_and_exits_1(workloads):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        w = start(workloads, module_argv("whoami", "--host", "127.0.0.1", "--port", str(port)))
        assert w.proc.wait(timeout=DEADLINE) == 1
        w.wait_line(rf"whoami: cannot listen on 127\.0\.0\.1:{port}: .*Address already in use")


def make_task(image: str, command: tuple[str, ...] = ()) -> TaskAssignment:
    return factories.task(TASK_ID, service_id="svc1", image=image, command=command)


def test_host_image_without_command_completes_at_once_with_exit_0():
    task = make_task("alpine")
    proc = subprocess.run(
        resolve(task.spec, task), env=environment(task), stdin=subprocess.DEVNULL, timeout=DEADLINE
    )
    assert proc.returncode == 0


# --- whoami in a task-like namespace (root) ------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=DEADLINE)


@pytest.fixture
def task_and_client_ns() -> Iterator[tuple[str, str]]:
    """Two fresh netns: task (eth0 10.0.0.3/24, eth1 172.18.0.3/16) and client (10.0.0.5)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    run = secrets.token_hex(2)
    task_ns, client_ns = f"vxwl-{run}-task", f"vxwl-{run}-cli"
    made: list[str] = []
    try:
        for ns in (task_ns, client_ns):
            ip("netns", "add", ns)
            made.append(ns)
        # Created inside the task netns with its peer sent straight to the client netns:
        # nothing ever appears in the host's root namespace.
        ip(
            "-n",
            task_ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            client_ns,
        )
        # A second interface, as the gateway-bridge leg of a task (no dummy driver here).
        ip("-n", task_ns, "link", "add", "eth1", "type", "veth", "peer", "name", "gw1")
        ip("-n", task_ns, "link", "set", "gw1", "up")
        for ns, addr in ((task_ns, "10.0.0.3/24"), (client_ns, "10.0.0.5/24")):
            ip("-n", ns, "addr", "add", addr, "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", task_ns, "addr", "add", "172.18.0.3/16", "dev", "eth1")
        ip("-n", task_ns, "link", "set", "eth1", "up")
        yield task_ns, client_ns
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=DEADLINE)


def run_as_task(workloads: list[Workload], ns: str, task: TaskAssignment) -> Workload:
    """Spawn the task's argv in `ns` and a new UTS namespace with its hostname, as the agent."""
    argv = resolve(task.spec, task)
    wrapper = [
        "ip",
        "netns",
        "exec",
        ns,
        "unshare",
        "--uts",
        "sh",
        "-c",
        'hostname "$0" && exec "$@"',
        task.hostname,
        *argv,
    ]
    return start(workloads, wrapper, environment(task))


def curl(ns: str, url: str) -> str | None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", url],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    return proc.stdout if proc.returncode == 0 else None


@pytest.mark.root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_whoami_in_a_task_namespace_reports_hostname_task_image_ips_and_client(
    workloads, task_and_client_ns
):
    task_ns, client_ns = task_and_client_ns
    w = run_as_task(workloads, task_ns, make_task("nginx"))
    w.wait_line(r"whoami listening on 0\.0\.0\.0:80$")

    body = poll(lambda: curl(client_ns, "http://10.0.0.3/hello"), "whoami to answer")
    lines = body.splitlines()
    assert lines[:5] == [
        f"I am {TASK_ID[:12]}",
        "Task: web.1",
        "Image: nginx:latest",
        "IP: 10.0.0.3",
        "IP: 172.18.0.3",
    ]
    assert re.fullmatch(r"RemoteAddr: 10\.0\.0\.5:\d+", lines[5])
    assert lines[6] == "GET /hello HTTP/1.1"
    assert "Host: 10.0.0.3" in lines
    assert not any("127.0.0.1" in line for line in lines)
    w.wait_line(r" 10\.0\.0\.5:\d+ GET /hello 200 \d+$")

    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=DEADLINE) == 0


@pytest.mark.root
def test_whoami_flags_from_the_service_command_reach_the_server(workloads, task_and_client_ns):
    task_ns, client_ns = task_and_client_ns
    w = run_as_task(workloads, task_ns, make_task("whoami:v2", ("--port", "8000")))
    w.wait_line(r"whoami listening on 0\.0\.0\.0:8000$")
    body = poll(lambda: curl(client_ns, "http://10.0.0.3:8000/"), "whoami on port 8000")
    assert "Image: whoami:v2\n" in body
    assert curl(client_ns, "http://10.0.0.3:80/") is None
