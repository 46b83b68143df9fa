"""Generated and mutated requests to every route of a live daemon (a 1-node swarm).

Each answer must be an answer (no 5xx: bad input is a 4xx naming what is wrong); after
the run the daemon still answers, its node is Ready and its session still applies
states (no dead thread), and everything the valid requests among them created can be
inspected and removed, leaving no task namespace behind (nothing half-created).

The user API on the daemon's unix socket is fuzzed, less the routes that change what
the daemon is (swarm init, join, leave, update: they would end the swarm under test) and
the streaming ones (exec, capture and trace). The node-to-node routes are fuzzed on 2377,
from the lab's client namespace with the node's own certificate (what a faulty or
hostile node of the swarm can send), less leave and the etcd membership calls (they
would end the swarm under test) and the agent's exec and capture.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netagent.lab.driver import SwarmLab, wait_for
from orchestrator.node.api.debug_routes import debug_routes
from orchestrator.node.api.node_routes import node_routes
from orchestrator.node.api.routes import routes
from orchestrator.node.api.verify_routes import verify_routes
from orchestrator.node.client import Endpoint

pytestmark = [pytest.mark.root, pytest.mark.lab]

LEFT_OUT = re.compile(
    r"^/v1/(swarm/(init|join|leave|update)$|agent/|(local/)?tasks/\{ref\}/exec$|debug/nodes/)"
)
ROUTES = sorted(
    {
        (r.method, r.path)
        for table in (routes, debug_routes)
        for r in table
        if r.method in ("GET", "POST", "DELETE") and not LEFT_OUT.match(r.path)
    }
)
NODE_ROUTES = sorted(
    {
        (r.method, r.path)
        for table in (node_routes, debug_routes, verify_routes)
        for r in table
        if r.path.startswith(("/v1/dispatcher/", "/v1/swarm/join-node", "/v1/node/", "/v1/ca"))
        and r.path != "/v1/dispatcher/leave"
        or r.path in ("/v1/agent/verify", "/v1/agent/debug/{op}", "/v1/managers/health")
    }
)
#: Names that exist, by the path segment before the reference (random text is the rest).
KNOWN_REFS = {
    "services": ["fz"],
    "networks": ["fznet", "ingress"],
    "nodes": ["manager1"],
    "tasks": ["fz.1"],
    "join-token": ["worker", "manager"],
    "desired": ["manager1"],
    "debug": ["resolve", "facts"],
}

#: Small numbers (a valid `replicas` must stay something one node runs at once) and
#: the extremes that must be refused.
numbers = st.integers(-3, 8) | st.sampled_from([10_001, 10**6, -(10**9), 2**63, 2**64])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | numbers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Bodies close to valid ones, with one field replaced, dropped or added.
VALID = {
    "/v1/services": {"name": "fz", "image": "whoami", "replicas": 1},
    "/v1/networks": {"name": "fznet", "driver": "overlay"},
    "/v1/services/{ref}/scale": {"replicas": 1},
    "/v1/services/{ref}/update": {"spec": {"name": "fz", "image": "whoami", "replicas": 2}},
    "/v1/nodes/{ref}/update": {"availability": "active", "label_add": ["a=b"]},
}


@st.composite
def requests(
    draw: st.DrawFn,
    routes: list[tuple[str, str]] = ROUTES,
    valid: dict[str, dict[str, Any]] = VALID,
) -> tuple[str, str, Any]:
    method, path = draw(st.sampled_from(routes))
    for before, name in re.findall(r"([\w-]+)/\{(\w+)\}", path):
        known = st.sampled_from(KNOWN_REFS.get(before, ["x"]))
        value = draw(st.one_of(known, known, known, st.text(min_size=1, max_size=30)))
        path = path.replace(f"{{{name}}}", quote(value, safe=""))
    if method != "POST":
        return method, path, None
    template = next((v for k, v in valid.items() if re.fullmatch(
        re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(k)), path)), None)  # fmt: skip
    body: Any
    if template is not None and draw(st.booleans()):
        body = dict(template)
        key = draw(st.sampled_from([*template, "extra"]))
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    elif draw(st.integers(0, 4)) == 0:
        body = draw(st.binary(max_size=64))  # not even JSON
    else:
        body = draw(json_values)
    return method, path, body


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = SwarmLab.create(tmp_path_factory.mktemp("labroot"), nodes=1)
    try:
        lab.wait_ready()
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def api(lab):
    endpoint = Endpoint.parse(lab.socket("manager1"))
    with httpx.Client(
        base_url=endpoint.url, transport=httpx.HTTPTransport(uds=endpoint.uds), timeout=30
    ) as client:
        yield client


def test_no_request_gets_a_server_error_or_leaves_anything_half_made(lab, api):
    answered: list[int] = []
    # Objects for the requests that name one to find it (they may remove it).
    lab.run("network", "create", "-d", "overlay", "fznet", check=True)
    lab.run("service", "create", "--name", "fz", "--network", "fznet", "whoami", check=True)

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests())
    def one(request: tuple[str, str, Any]) -> None:
        method, path, body = request
        kwargs: dict[str, Any] = {}
        if isinstance(body, bytes):
            kwargs["content"] = body
        elif body is not None:
            kwargs["json"] = body
        resp = api.request(method, path, **kwargs)
        answered.append(resp.status_code)
        assert resp.status_code < 500, (method, path, body, resp.status_code, resp.text[:300])

    one()
    print("answers by status:", sorted(Counter(answered).items()))
    assert any(400 <= code < 500 for code in answered)
    assert any(code < 300 for code in answered)
    # The daemon answers, its node is Ready, and the whole path still works: its
    # session's loops live (the watchdog's age is within a long-poll) and a new
    # service runs.
    assert api.get("/v1/info").status_code == 200
    assert lab.node_states() == {"manager1": "ready"}
    age = re.search(r"^vxswarm_session_state_age_seconds (\S+)$", api.get("/metrics").text, re.M)
    assert age is not None and float(age.group(1)) < 30
    api.post("/v1/nodes/manager1/update", json={"availability": "active"})  # if drained
    with lab.service("after", "whoami", replicas=1):
        pass
    # Whatever the valid requests made is whole: it can be inspected and removed.
    for svc in api.get("/v1/services").json():
        assert api.get(f"/v1/services/{svc['id']}").status_code == 200
        assert api.delete(f"/v1/services/{svc['id']}").status_code < 300
    wait_for("no task namespace left", lambda: not lab.task_namespaces(), timeout=60)
    for net in api.get("/v1/networks").json():
        if not net["spec"].get("ingress"):
            wait_for(
                f"network {net['spec']['name']} removed",
                lambda i=net["id"]: api.delete(f"/v1/networks/{i}").status_code < 300,
                timeout=30,
            )


def test_node_routes_on_2377_answer_a_members_garbage_with_a_4xx(lab, api, tmp_path):
    node_id = next(iter(lab.hostnames()))
    certs = lab.root / lab.name / "manager1" / "certificates"
    valid = {
        "/v1/dispatcher/heartbeat": {"node_id": node_id, "statuses": [], "applied_digest": ""},
        "/v1/swarm/join-node": {
            "token": "SWMTKN-1-x-y", "hostname": "fz", "addr": "192.168.56.99",
            "engine_version": "0.1.0", "csr": "x",
        },
        "/v1/node/certificate": {"certificate": "x", "csr": "y"},
        "/v1/agent/verify": {},
    }  # fmt: skip
    answered: list[str] = []
    body_file = tmp_path / "body"
    # Reached by the name a node checks its manager by (swarmkit's ServerName).
    resolve = "swarm-manager:2377:192.168.56.11"

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests(NODE_ROUTES, valid), st.sampled_from(["", node_id, "x"]))
    def one(request: tuple[str, str, Any], query_node: str) -> None:
        method, path, body = request
        if path == "/v1/dispatcher/assignments":
            path += f"?node_id={query_node}&digest=fz"  # never the current digest: no wait
        args = ["-X", method]
        if body is not None:
            body_file.write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
            args += ["--data-binary", f"@{body_file}", "-H", "Content-Type: application/json"]
        done = subprocess.run(
            ["ip", "netns", "exec", lab.node_ns("client"), "curl", "-s", "-m", "10",
             "-o", "/dev/null", "-w", "%{http_code}",
             "--cacert", str(certs / "swarm-root-ca.crt"), "--cert", str(certs / "swarm-node.crt"),
             "--key", str(certs / "swarm-node.key"), "--resolve", resolve,
             *args, f"https://swarm-manager:2377{path}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        code = done.stdout.strip()
        answered.append(code)
        assert code != "000", ("no answer", method, path, body)
        assert int(code) < 500, (method, path, body, code)

    one()
    print("answers by status:", sorted(Counter(answered).items()))
    assert any(code.startswith("4") for code in answered)
    assert any(code.startswith("2") for code in answered)
    # The node still follows its manager, and nobody joined on a forged request.
    assert lab.node_states() == {"manager1": "ready"}
    assert [n["hostname"] for n in api.get("/v1/nodes").json()] == ["manager1"]
    age = re.search(r"^vxswarm_session_state_age_seconds (\S+)$", api.get("/metrics").text, re.M)
    assert age is not None and float(age.group(1)) < 30
