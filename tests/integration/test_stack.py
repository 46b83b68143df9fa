"""`vxswarm stack` on a real 3-node lab: both shipped examples deployed, re-deployed
(a rolling update of only what changed), pruned and removed; the unsupported-key
warning; invalid files refused with nothing deployed; the ls/ps/services tables.

The tests share one lab; each removes its stacks even when it fails."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from netagent.lab.driver import Result, SwarmLab, running_lab, wait_for
from orchestrator.cli.task_table import TASK_HEADERS
from orchestrator.stack.names import NAMESPACE_LABEL

pytestmark = [pytest.mark.root, pytest.mark.lab]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEB = str(EXAMPLES / "web.yml")
TWO_TIER = str(EXAMPLES / "two-tier.yml")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def deploy(lab: SwarmLab, name: str, *files: str, env: dict | None = None, args=()) -> Result:
    """`stack deploy -c FILE... NAME`, with extra environment for ${VAR} substitution."""
    runner = dataclasses.replace(lab, env={**lab.env, **(env or {})}) if env else lab
    flags = [a for f in files for a in ("-c", f)]
    return runner.run("stack", "deploy", *flags, *args, name, timeout=120)


@contextlib.contextmanager
def stack(lab: SwarmLab, name: str, *files: str, env: dict | None = None) -> Iterator[Result]:
    """A deployed stack for one test, removed (and its tasks gone) even if the test fails."""
    res = deploy(lab, name, *files, env=env)
    assert res.code == 0, res.err
    try:
        yield res
    finally:
        lab.run("stack", "rm", name, timeout=120)
        wait_for(f"stack {name}'s tasks gone", lambda: not lab.task_namespaces(), timeout=60)


def names(lab: SwarmLab, kind: str) -> set[str]:
    return {o["spec"]["name"] for o in lab.json(kind, "ls")}


def ip_on(lab: SwarmLab, task: dict, network: str) -> str:
    nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == network)
    return str(
        next(IPv4Interface(a["address"]).ip for a in task["attachments"] if a["network_id"] == nid)
    )


def dig(lab: SwarmLab, task: str, name: str) -> list[str]:
    res = lab.run("exec", task, "dig", "+short", "+tries=1", "+time=3", name)
    assert res.code == 0, res.out + res.err
    return sorted(res.out.split())


def test_web_example_runs_five_replicas_behind_port_80_and_rm_leaves_nothing(lab):
    before_nets = names(lab, "network")
    with stack(lab, "web", WEB) as res:
        assert res.out.splitlines() == ["Creating network web_default", "Creating service web_web"]
        tasks = lab.converge("web_web", 5, timeout=60)
        (svc,) = lab.json("service", "ls")
        assert svc["spec"]["labels"] == {NAMESPACE_LABEL: "web"}
        assert svc["spec"]["networks"] == [{"target": "web_default", "aliases": ["web"]}]

        script = "for i in $(seq 30); do curl -s -m2 http://192.168.56.12/; done"
        seen = {ln.split()[2] for ln in lab.lab("ssh", "client", script).out.splitlines()
                if ln.startswith("I am ")}  # fmt: skip
        assert seen <= {t["id"][:12] for t in tasks} and len(seen) > 1, seen

        ls = lab.run("stack", "ls", check=True).out.splitlines()
        assert ls[0].split() == ["NAME", "SERVICES"] and ls[1].split() == ["web", "1"]
        assert lab.json("stack", "ls") == [{"name": "web", "services": 1}]
        services = lab.run("stack", "services", "web", check=True).out.splitlines()
        assert services[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
        assert services[1].split()[1:] == ["web_web", "replicated", "5/5", "nginx:latest",
                                           "*:80->80/tcp"]  # fmt: skip
        ps = lab.run("stack", "ps", "web", check=True).out.splitlines()
        assert re.split(r"\s{2,}", ps[0].strip()) == TASK_HEADERS
        assert sorted(ln.split()[1] for ln in ps[1:]) == [f"web_web.{i}" for i in range(1, 6)]

        rm = lab.run("stack", "rm", "web", check=True, timeout=120)
        assert rm.out.splitlines() == ["Removing service web_web", "Removing network web_default"]
    assert lab.json("service", "ls") == []
    assert names(lab, "network") == before_nets
    assert lab.json("stack", "ls") == []
    res = lab.run("stack", "ps", "web")
    assert (res.code, res.err) == (1, "Error: nothing found in stack: web\n")


def test_two_tier_example_pins_the_backend_and_names_resolve_inside_the_stack(lab):
    with stack(lab, "shop", TWO_TIER):
        front = lab.converge("shop_frontend", 3, timeout=60)
        back = lab.converge("shop_backend", 2, timeout=60)
        hosts = lab.hostnames()
        assert {hosts[t["node_id"]] for t in back} == {"manager1"}
        # The frontend sits on front and back (and ingress); the backend only on back.
        assert len(front[0]["attachments"]) == 3 and len(back[0]["attachments"]) == 1

        back_ips = sorted(ip_on(lab, t, "shop_back") for t in back)
        assert dig(lab, "shop_frontend.1", "backend") == back_ips  # the short-name alias
        assert dig(lab, "shop_frontend.1", "api") == back_ips  # the file's own alias
        reply = lab.run("exec", "shop_frontend.1", "curl", "-s", "-m5", "http://backend:8080/")
        assert reply.code == 0 and reply.out, reply.err

        res = lab.lab("ssh", "client", "curl -s -m2 http://192.168.56.13:8080/")
        assert res.out.startswith("I am "), res.out + res.err


def test_redeploy_rolls_only_the_changed_service_and_prune_removes_the_dropped_one(lab, tmp_path):
    more_backends = tmp_path / "more.yml"
    more_backends.write_text("services:\n  backend:\n    deploy:\n      replicas: 3\n")
    only_front = tmp_path / "front-only.yml"
    only_front.write_text(
        "services:\n  frontend:\n    image: whoami:2\n    ports: ['8080:80']\n"
        "    networks: [front]\nnetworks:\n  front:\n"
    )
    with stack(lab, "shop", TWO_TIER):
        front_ids = {t["id"] for t in lab.converge("shop_frontend", 3, timeout=60)}
        back_ids = {t["id"] for t in lab.converge("shop_backend", 2, timeout=60)}

        same = deploy(lab, "shop", TWO_TIER)
        assert same.code == 0, same.err
        assert same.out.splitlines() == [
            "Service shop_backend is up to date",
            "Service shop_frontend is up to date",
        ]

        dry = deploy(lab, "shop", TWO_TIER, args=("--dry-run",), env={"FRONTEND_TAG": "2"})
        assert dry.code == 0 and "Updating service shop_frontend" in dry.out, dry.err
        assert lab.json("service", "inspect", "shop_frontend")[0]["spec"]["image"] == (
            "whoami:latest"
        )

        res = deploy(lab, "shop", TWO_TIER, str(more_backends), env={"FRONTEND_TAG": "2"})
        assert res.code == 0, res.err
        assert [ln.split(" (id:")[0] + ln.split(")")[-1] for ln in res.out.splitlines()] == [
            "Updating service shop_backend: replicas changed",
            "Updating service shop_frontend: image changed",
        ]
        wait_for(
            "every frontend task replaced by a whoami:2 one",
            lambda: (r := lab.running("shop_frontend")) and len(r) == 3
            and {t["image"] for t in r} == {"whoami:2"} and not {t["id"] for t in r} & front_ids,
            timeout=90,
        )  # fmt: skip
        backends = lab.converge("shop_backend", 3, timeout=60)
        assert back_ids < {t["id"] for t in backends}, "a scaled service's tasks were replaced"

        kept = deploy(lab, "shop", str(only_front))
        assert kept.code == 0, kept.err
        assert "shop_backend" in names(lab, "service")
        pruned = deploy(lab, "shop", str(only_front), args=("--prune",))
        assert pruned.code == 0, pruned.err
        assert pruned.out.splitlines()[0] == "Removing service shop_backend"
        assert names(lab, "service") == {"shop_frontend"}


def test_unsupported_keys_are_named_in_one_warning_and_the_rest_deploys(lab, tmp_path):
    compose = tmp_path / "c.yml"
    compose.write_text(
        "version: '3.8'\nservices:\n  app:\n    image: alpine\n    command: sleep 600\n"
        "    build: ./app\n    depends_on: [db]\n    container_name: app1\n"
        "  db:\n    image: alpine\n    command: [sleep, '600']\n    volumes: ['data:/var/db']\n"
        "volumes:\n  data: {}\n"
    )
    with stack(lab, "warn", str(compose)) as res:
        assert res.err == "Ignoring unsupported options: build, container_name, depends_on\n"
        lab.converge("warn_app", 1)
        (db,) = lab.converge("warn_db", 1)
        # The named volume is honoured: the stack's `warn_data`, a directory of db's node.
        wrote = lab.run("exec", "warn_db.1", "sh", "-c", "echo kept > /var/db/f")
        assert wrote.code == 0, wrote.err
        node = lab.hostnames()[db["node_id"]]
        volume = lab.root / lab.name / node / "agent" / "volumes" / "warn_data"
        assert (volume / "f").read_text() == "kept\n"
        assert dig(lab, "warn_app.1", "db") == [
            ip_on(lab, lab.running("warn_db")[0], "warn_default")
        ]


BAD_FILES = {
    "replicas.yml": (
        "services:\n  web:\n    image: whoami\n    deploy:\n      replicas: two\n",
        "Error: services.web.deploy.replicas: expected an integer, got 'two'",
    ),
    "image.yml": (
        "services:\n  web:\n    image: whoami\n  db:\n    image: postgres\n",
        "Error: services.db.image: unknown image 'postgres': expected one of alpine, busybox, "
        "host, nginx, slowreply, whoami (optionally :TAG)",
    ),
    "network.yml": (
        "services:\n  web:\n    image: whoami\n    networks: [back]\n",
        "Error: services.web.networks.back: network 'back' is not declared in the top-level "
        "networks (declared: none)",
    ),
    "external.yml": (
        "services:\n  web:\n    image: whoami\n    networks: [shared]\n"
        "networks:\n  shared:\n    external: true\n",
        "Error: network 'shared' is declared as external, but could not be found: create it "
        "first (vxswarm network create -d overlay shared)",
    ),
    "port.yml": (
        "services:\n  a:\n    image: whoami\n    ports: ['8090:80']\n"
        "  b:\n    image: whoami\n    ports: ['8090:80']\n",
        "Error: service bad_b: port 8090/tcp is already in use by service bad_a",
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_an_invalid_file_is_refused_naming_the_key_and_nothing_is_deployed(lab, tmp_path, bad):
    text, error = BAD_FILES[bad]
    path = tmp_path / bad
    path.write_text(text)
    before = (names(lab, "service"), names(lab, "network"))
    res = deploy(lab, "bad", str(path))
    assert (res.code, res.out, res.err) == (1, "", error + "\n")
    assert (names(lab, "service"), names(lab, "network")) == before
