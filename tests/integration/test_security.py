"""The cluster's security on a real lab: the user API off the network, port 2377 mutual TLS.

Every attempt is made as an attacker would: from the lab's `client` namespace over the
underlay with curl, without a certificate or with a real node's certificate. Checks that
each call is refused and that nothing in the cluster changed; that a worker's
certificate cannot call manager routes or speak for another node; that a removed
node's certificate is refused; that 2377 carries TLS only; that a token pins the CA
(a second swarm's manager is refused before the secret is sent); that certificates
expire and renew, also for a node stopped past its expiry; and that no file of a
node's state directory is readable by others.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for
from netagent.lab.loadgen import ab_during, doing
from orchestrator.ca.node_certs import cert_info, check_chain

pytestmark = [pytest.mark.root, pytest.mark.lab]

MANAGER, WORKER1, WORKER2 = "192.168.56.11", "192.168.56.12", "192.168.56.13"
ROLES = ("worker", "manager")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[SwarmLab]:
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_client(lab: SwarmLab, *curl_args: str) -> tuple[str, str]:
    """curl from the lab's client namespace: (HTTP status, body); status 000 when there
    was no HTTP answer at all."""
    done = subprocess.run(
        ["ip", "netns", "exec", lab.node_ns("client"), "curl", "-s", "-m", "5",
         "-o", "/dev/stdout", "-w", "\n%{http_code}", *curl_args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    body, _, code = done.stdout.rpartition("\n")
    return code, body


def certs_of(lab: SwarmLab, node: str) -> list[str]:
    """curl options presenting `node`'s own certificate and trusting the swarm's roots."""
    d = lab.root / lab.name / node / "certificates"
    return [
        "--cacert", str(d / "swarm-root-ca.crt"),
        "--cert", str(d / "swarm-node.crt"),
        "--key", str(d / "swarm-node.key"),
    ]  # fmt: skip


def cluster_view(lab: SwarmLab) -> tuple:
    """What an attack must not change: nodes, services, networks, the join tokens."""
    nodes = sorted((n["id"], n["status"], n["role"]) for n in lab.json("node", "ls"))
    services = sorted(s["spec"]["name"] for s in lab.json("service", "ls"))
    networks = sorted(n["spec"]["name"] for n in lab.json("network", "ls"))
    tokens = [
        lab.run("swarm", "join-token", "-q", r, check=True).out for r in ("worker", "manager")
    ]
    return nodes, services, networks, tokens


def body_file(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return f"@{path}"


def test_without_a_certificate_nothing_is_served_and_nothing_changes(lab, tmp_path):
    with lab.service("web", "--network", "webnet", "whoami", replicas=1) as (task,):
        before = cluster_view(lab)
        marker = tmp_path / "marker"
        create = body_file(tmp_path, "svc.json", {
            "name": "pwn", "image": "alpine", "command": ["sh", "-c", f"id > {marker}"],
            "restart_condition": "none",
        })  # fmt: skip
        cmd = body_file(tmp_path, "cmd.json", {"cmd": ["id"], "task_id": task["id"]})
        leave = body_file(tmp_path, "leave.json", {"force": True})
        attempts = [
            ("GET", f"{MANAGER}:2377/v1/swarm/join-token/manager", None),
            ("GET", f"{MANAGER}:2377/v1/swarm/join-token/worker", None),
            ("POST", f"{MANAGER}:2377/v1/services", create),
            ("POST", f"{MANAGER}:2377/v1/networks", body_file(tmp_path, "n.json", {"name": "x"})),
            ("POST", f"{MANAGER}:2377/v1/tasks/{task['id']}/exec", cmd),
            ("POST", f"{WORKER1}:2377/v1/agent/exec", cmd),
            ("POST", f"{MANAGER}:2377/v1/debug/nodes/worker1/capture", cmd),
            ("POST", f"{WORKER1}:2377/v1/agent/debug/capture", cmd),
            ("POST", f"{MANAGER}:2377/v1/verify", body_file(tmp_path, "v.json", {})),
            ("POST", f"{WORKER1}:2377/v1/agent/verify", body_file(tmp_path, "v.json", {})),
            ("POST", f"{WORKER2}:2377/v1/swarm/leave", leave),
            ("POST", f"{MANAGER}:2377/v1/swarm/init", body_file(tmp_path, "i.json", {})),
            ("POST", f"{WORKER1}:2377/v1/swarm/join", leave),
            ("POST", f"{MANAGER}:2377/v1/dispatcher/leave", leave),
            ("GET", f"{MANAGER}:2377/v1/nodes", None),
        ]
        for method, where, data in attempts:
            extra = ["-X", method] + (["-d", data] if data else [])
            plain_code, plain = from_client(lab, *extra, f"http://{where}")
            tls_code, tls = from_client(lab, "-k", *extra, f"https://{where}")
            # Plain HTTP gets no HTTP answer from a TLS port; TLS without a certificate
            # gets a refusal naming why.
            assert plain_code == "000", (where, plain_code, plain)
            assert tls_code in ("403", "404"), (where, tls_code, tls)
            assert "SWMTKN" not in plain + tls
        # The read-only views take no write, whatever the path.
        for path in ("/v1/services", "/v1/swarm/leave", "/v1/tasks/web.1/exec"):
            code, _ = from_client(lab, "-X", "POST", "-d", create, f"http://{MANAGER}:9323{path}")
            assert code in ("404", "405"), (path, code)
        code, state = from_client(lab, f"http://{MANAGER}:9323/visualizer/state")
        assert code == "200" and "SWMTKN" not in state and "VXSWARM_" not in state
        assert cluster_view(lab) == before
        assert not marker.exists()


def test_a_worker_certificate_cannot_call_manager_routes_nor_speak_for_another_node(lab, tmp_path):
    ids = {host: nid for nid, host in lab.hostnames().items()}
    worker1 = certs_of(lab, "worker1")
    code, body = from_client(lab, *worker1, f"https://{MANAGER}:2377/v1/swarm/join-token/worker")
    assert (code, "SWMTKN" in body) == ("403", False)
    assert "is a worker: this call is for a manager" in body
    code, body = from_client(lab, *worker1, "-X", "POST", "-d",
                             body_file(tmp_path, "c.json", {"cmd": ["id"]}),
                             f"https://{WORKER2}:2377/v1/agent/exec")  # fmt: skip
    assert code == "403" and "is a worker" in body
    as_worker2 = body_file(tmp_path, "hb2.json", {"node_id": ids["worker2"]})
    code, body = from_client(lab, *worker1, "-X", "POST", "-d", as_worker2,
                             f"https://{MANAGER}:2377/v1/dispatcher/heartbeat")  # fmt: skip
    assert code == "403"
    assert f"node {ids['worker1']} cannot speak for node {ids['worker2']}" in body
    # The header a manager forwards a node's call with is believed of managers only.
    code, body = from_client(lab, *worker1, "-X", "POST", "-d", as_worker2,
                             "-H", f"X-Vxswarm-Forwarded-For: {ids['worker2']}",
                             f"https://{MANAGER}:2377/v1/dispatcher/heartbeat")  # fmt: skip
    assert code == "403"
    assert f"node {ids['worker1']} cannot speak for node {ids['worker2']}" in body
    # Nor may a worker ask for an etcd membership or move raft leadership.
    for path in ("/v1/managers/member", "/v1/managers/transfer"):
        code, body = from_client(lab, *worker1, "-X", "POST", "-d", as_itself_body(tmp_path, ids),
                                 f"https://{MANAGER}:2377{path}")  # fmt: skip
        assert code == "403" and "is a worker" in body, (path, body)
    as_itself = body_file(tmp_path, "hb1.json", {"node_id": ids["worker1"]})
    code, body = from_client(lab, *worker1, "-X", "POST", "-d", as_itself,
                             f"https://{MANAGER}:2377/v1/dispatcher/heartbeat")  # fmt: skip
    assert code == "200", body


def as_itself_body(tmp_path: Path, ids: dict[str, str]) -> str:
    return body_file(tmp_path, "m.json", {"node_id": ids["worker1"], "to": 1})


def test_port_2377_carries_tls_only(lab, tmp_path):
    """Heartbeats, assignments and an exec relay on the underlay: no HTTP, no token."""
    pcap = tmp_path / "2377.pcap"
    capture = subprocess.Popen(
        ["ip", "netns", "exec", lab.node_ns("manager1"), "dumpcap", "-q", "-i", "eth0",
         "-f", "tcp port 2377", "-a", "duration:6", "-w", str(pcap)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # dumpcap opens its socket
        with lab.service("sh", "--network", "webnet", "--constraint", "node.hostname==worker1",
                         "alpine", "sleep", "600", replicas=1):  # fmt: skip
            lab.run("exec", "sh.1", "hostname", check=True)
            token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
        _, err = capture.communicate(timeout=30)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    raw = pcap.read_bytes()
    assert len(raw) > 2000, err  # heartbeats and assignments did flow
    for clear in (b"HTTP/1.1", b"SWMTKN", token.encode(), b"node_id", b"/v1/"):
        assert clear not in raw, clear


def test_no_file_under_a_nodes_state_directory_is_readable_by_others(lab):
    for node in lab.nodes:
        state_dir = lab.root / lab.name / node
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        for path in [state_dir, *state_dir.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o007 == 0, f"{path} is {oct(mode)}"
        for secret in ("certificates/swarm-node.key", "agent/identity.json"):
            assert stat.S_IMODE((state_dir / secret).stat().st_mode) == 0o600
    # The cluster store, with the CA key: the manager's etcd member and its data.
    etcd = lab.root / lab.name / "manager1" / "manager" / "etcd"
    assert stat.S_IMODE(etcd.stat().st_mode) == 0o700
    assert stat.S_IMODE((etcd / "data" / "member" / "snap" / "db").stat().st_mode) == 0o600
    assert stat.S_ISSOCK((etcd / "client:2379").lstat().st_mode)


def test_a_root_ca_rotation_reissues_every_node_and_the_mesh_loses_nothing(lab):
    old_token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
    with lab.service("web", "--network", "webnet", "--publish", "8080:80", "whoami", replicas=2):
        result = ab_during(
            lab,
            f"http://{WORKER2}:8080/",
            doing(lab, "swarm", "ca", "--rotate", "--quiet"),
            n=4000,
            concurrency=4,
            after=1.0,
        )
    assert result.complete == 4000, result.raw
    assert (result.failed, result.non_2xx, result.timed_out) == (0, 0, 0), result.raw
    status = json.loads(
        subprocess.run(
            ["curl", "-s", "--unix-socket", lab.socket("manager1").removeprefix("unix://"),
             "http://vxswarm/v1/swarm/ca"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    )  # fmt: skip
    assert not status["rotating"] and status["renewed"] == status["nodes"] == 3
    # Every node ends up trusting, and holding a certificate of, the new root only
    # (the last step reaches a node with its next heartbeat answer).
    dirs = [lab.root / lab.name / node / "certificates" for node in lab.nodes]
    wait_for(
        "every node trusting the new root only",
        lambda: all(
            (d / "swarm-root-ca.crt").read_text().strip() == status["root"].strip() for d in dirs
        ),
        timeout=15,
    )
    for d in dirs:
        check_chain((d / "swarm-node.crt").read_bytes(), status["root"].encode(), now=utcnow())
    assert lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip() != old_token
    lab.wait_ready()


def test_a_removed_nodes_certificate_is_refused(lab, tmp_path):
    ids = {host: nid for nid, host in lab.hostnames().items()}
    lab.run("node", "rm", "--force", "worker2", check=True)
    wait_for("worker2 gone", lambda: "worker2" not in lab.hostnames().values(), timeout=30)
    beat = body_file(tmp_path, "hb.json", {"node_id": ids["worker2"]})
    code, body = from_client(lab, *certs_of(lab, "worker2"), "-X", "POST", "-d", beat,
                             f"https://{MANAGER}:2377/v1/dispatcher/heartbeat")  # fmt: skip
    assert code == "403" and "is not part of this swarm" in body


def test_a_token_pins_the_ca_and_its_secret(lab):
    """Runs after the removal above: worker2 founds a second swarm."""
    lab.run("swarm", "leave", "--force", node="worker2", check=True)
    lab.run("swarm", "init", "--advertise-addr", WORKER2, node="worker2", check=True)
    lab.run("swarm", "leave", node="worker1", check=True)
    token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()

    def join_node_requests(node: str) -> float:
        sock = str(lab.root / lab.name / node / "vxswarm.sock")
        text = subprocess.run(
            ["curl", "-s", "--unix-socket", sock, "http://vxswarm/metrics"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vxswarm_api_requests_total") and "join-node" in line
        )

    before = join_node_requests("worker2")
    wrong_swarm = lab.run("swarm", "join", "--token", token, f"{WORKER2}:2377", node="worker1")
    assert wrong_swarm.code != 0
    assert (
        f"the manager at {WORKER2}:2377 presents a CA whose digest does not match the token: "
        "wrong swarm or a man in the middle"
    ) in wrong_swarm.err
    # Refused before the secret left: the second swarm's manager never got a join.
    assert join_node_requests("worker2") == before
    wrong_secret = token[:-25] + "0" * 25
    refused = lab.run("swarm", "join", "--token", wrong_secret, f"{MANAGER}:2377", node="worker1")
    assert refused.code != 0 and "invalid join token" in refused.err
    joined = lab.run("swarm", "join", "--token", token, f"{MANAGER}:2377", node="worker1")
    assert joined.code == 0, joined.err


def test_certificates_expire_and_renew_also_after_a_stop_past_their_expiry(tmp_path_factory):
    short = {"VXSWARM_MIN_CERT_EXPIRY": "5"}
    with running_lab(tmp_path_factory.mktemp("shortcerts"), env=short) as lab:
        lab.run("swarm", "update", "--cert-expiry", "20s", check=True)
        # worker1 joins again to get a certificate of the new, short life.
        lab.run("swarm", "leave", node="worker1", check=True)
        token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
        lab.run("swarm", "join", "--token", token, f"{MANAGER}:2377", node="worker1", check=True)
        cert = lab.root / lab.name / "worker1" / "certificates" / "swarm-node.crt"
        first = cert_info(cert.read_bytes())
        assert (first.not_after - first.not_before).total_seconds() <= 20 + 61
        # Renewed on its own, between 50 % and 80 % of its life (10-16 s here).
        renewed = wait_for(
            "worker1's certificate renewed",
            lambda: (i := cert_info(cert.read_bytes())).not_after > first.not_after and i,
            timeout=30,
        )
        assert renewed.node_id == first.node_id
        # Stopped past its expiry: at start it renews before anything else, and is Ready.
        lab.lab("stop", "worker1", check=True)
        time.sleep(22)
        lab.lab("start", "worker1", check=True)
        wait_for(
            "worker1 back with a valid certificate",
            lambda: (
                cert_info(cert.read_bytes()).not_after > renewed.not_after
                and lab.node_states().get("worker1") == "ready"
            ),
            timeout=30,
        )
