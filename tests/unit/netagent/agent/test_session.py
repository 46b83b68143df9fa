"""The agent's session against a real TLS server on 127.0.0.1: its loops never die."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netagent.agent.session import Session
from netagent.contract.messages import NodeIdentity
from orchestrator.ca import authority, node_certs, tls
from orchestrator.ca.roles import NodeRole


class Manager(http.server.BaseHTTPRequestHandler):
    """Answers heartbeats (period 50 ms) and refuses assignments (503: poll again)."""

    beats = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).beats += 1
        self._answer(200, {"heartbeat_period": 0.05})

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(0.05)
        self._answer(503, {"error": {"kind": "Unavailable", "message": "not yet"}})

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """A TLS server with a manager certificate; (its "ip:port", a node's client context)."""
    root = authority.new_root("c1")
    bundle = tmp_path / "ca.crt"
    bundle.write_bytes(authority.bundle_pem(root))

    def issue(name: str, role: NodeRole) -> tuple[Path, Path]:
        key = node_certs.new_key()
        cert = authority.sign_csr(
            root, node_certs.make_csr(key), node_id=name, role=role, cluster_id="c1",
            expiry=timedelta(hours=2),
        )  # fmt: skip
        (tmp_path / f"{name}.key").write_bytes(key)
        (tmp_path / f"{name}.crt").write_bytes(cert)
        return tmp_path / f"{name}.crt", tmp_path / f"{name}.key"

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Manager)
    server.socket = tls.server_context(*issue("m1", NodeRole.MANAGER), bundle).wrap_socket(
        server.socket, server_side=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"127.0.0.1:{server.server_address[1]}",
            tls.client_context(bundle, *issue("w1", NodeRole.WORKER)),
        )
    finally:
        server.shutdown()
        server.server_close()


def test_an_error_in_a_loop_is_counted_and_the_loop_goes_on(manager):
    addr, context = manager
    errors: list[str] = []
    calls = {"n": 0}

    def statuses() -> list:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a data plane bug")
        return []

    identity = NodeIdentity(
        node_id="w1", role="worker", cluster_id="c1", manager_addr=addr,
        addr=IPv4Address("127.0.0.1"), heartbeat_period=0.05,
    )  # fmt: skip
    session = Session(
        identity,
        tls=context,
        server_name=tls.MANAGER_NAME,
        apply=lambda _state: None,
        statuses=statuses,
        on_error=errors.append,
    )
    Manager.beats = 0
    session.start()
    try:
        deadline = time.monotonic() + 20
        while Manager.beats < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert errors[:1] == ["heartbeat"]
        assert Manager.beats >= 3  # the heartbeat loop went on after the error
        assert all(t.is_alive() for t in session._threads)
    finally:
        session.stop()
