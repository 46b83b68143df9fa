"""Secrets and configs on a real 3-node lab, end to end: `secret create` through the
manager, sealed in etcd, opened into the desired state of the node that runs the task,
and read inside the task (`vxswarm exec`) at /run/secrets/<name>; absent from every
file under every node's state directory, from `secret inspect`, `service inspect` and
`/v1/debug/desired`; `rm` refused while in use; a stack's own secrets and configs made
and removed with it; a promoted manager given the data key (0600 in a 0700 directory)
and a demoted one losing it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from netagent.lab.driver import VXSWARM, Result, SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def with_input(lab: SwarmLab, data: bytes, *args: str) -> Result:
    """`vxswarm ARGS` on manager1 with `data` on its stdin (`secret create NAME -`)."""
    env = {**lab.env, "VXSWARM_HOST": lab.socket("manager1")}
    p = subprocess.run([*VXSWARM, *args], env=env, input=data, capture_output=True, timeout=60)
    return Result(p.returncode, p.stdout.decode(), p.stderr.decode())


def state_dirs(lab: SwarmLab) -> Path:
    return lab.root / lab.name


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every regular file under `root` (every node's state, etcd's data included) that
    holds one of `needles`."""
    found = []
    for p in root.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                found += [f"{p}: {n!r}" for n in needles if n in data]
        except OSError:
            continue  # a socket, a file gone meanwhile
    return found


def exec_in(lab: SwarmLab, task: str, script: str) -> str:
    return lab.run("exec", task, "sh", "-c", script, check=True).out


def debug_desired(lab: SwarmLab, node_id: str) -> str:
    """The raw answer of GET /v1/debug/desired/<node> on manager1's socket."""
    sock = str(lab.socket("manager1")).removeprefix("unix://")
    out = subprocess.run(
        ["curl", "-s", "--unix-socket", sock, f"http://vxswarm/v1/debug/desired/{node_id}"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout.decode()


def test_a_secret_is_read_in_its_task_and_nowhere_else(lab, tmp_path):
    value = f"pw-{secrets.token_hex(16)}".encode()
    needles = [value, base64.b64encode(value)]
    pw = tmp_path / "pw.txt"
    pw.write_bytes(value)
    sid = lab.run("secret", "create", "--label", "team=a", "db_pass", str(pw), check=True)
    cid = with_input(lab, b"listen 8080\n", "config", "create", "app.conf", "-")
    assert cid.code == 0, cid.err
    listed = lab.run("secret", "ls", check=True).out.splitlines()
    assert listed[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
    assert listed[1].split()[:2] == [sid.out.strip(), "db_pass"]
    # Docker's filters and templates, as on every listing; `list` and `remove` are aliases.
    shown = lab.run("secret", "list", "-f", "label=team=a", "-f", "name=db",
                    "--format", "{{.Name}} {{.Labels}}", check=True).out  # fmt: skip
    assert shown == "db_pass team=a\n"
    assert lab.run("secret", "ls", "-f", "name=nope", "-q", check=True).out == ""
    name = lab.run("config", "inspect", "-f", "{{.Spec.Name}}", "app.conf", check=True).out
    assert name == "app.conf\n"
    flags = (
        "--secret",
        "db_pass",
        "--secret",
        "source=db_pass,target=/etc/pw,uid=33,mode=0400",
        "--config",
        "source=app.conf,target=/etc/app.conf",
    )
    with lab.service("web", *flags, "alpine", "sleep", "1000") as tasks:
        [task] = tasks
        assert exec_in(lab, "web.1", "cat /run/secrets/db_pass").encode() == value
        assert exec_in(lab, "web.1", "stat -c '%u %a' /etc/pw; cat /etc/pw").encode() == (
            b"33 400\n" + value
        )
        assert exec_in(lab, "web.1", "cat /etc/app.conf") == "listen 8080\n"

        # Not on any node's disk (etcd's data included: it holds the sealed value).
        assert files_holding(state_dirs(lab), needles) == []
        # Not in any answer that shows the secret, the service or the desired state.
        shown = [
            lab.run("secret", "inspect", "db_pass", check=True).out,
            lab.run("secret", "inspect", "--pretty", "db_pass", check=True).out,
            lab.run("secret", "ls", "--format", "json", check=True).out,
            lab.run("service", "inspect", "web", check=True).out,
            debug_desired(lab, task["node_id"]),
        ]
        for text in shown:
            assert not any(n.decode() in text for n in needles)
        inspected = json.loads(shown[3])[0]["spec"]["secrets"]
        assert [(r["source"], r["target"]) for r in inspected] == [
            ("db_pass", "db_pass"),
            ("db_pass", "/etc/pw"),
        ]
        assert "/run/secrets/db_pass" in shown[4]  # the file is there, emptied

        refused = lab.run("secret", "rm", "db_pass")
        assert refused.code != 0
        assert "secret 'db_pass' is in use by the following service: web" in refused.err
        refused = lab.run("config", "rm", "app.conf")
        assert "config 'app.conf' is in use by the following service: web" in refused.err

        # --secret-rm rolls the task: the new one has no such file.
        lab.run("service", "update", "--detach", "--secret-rm", "db_pass", "web", check=True)
        lab.wait_for(
            "web.1 without its secret",
            lambda: lab.run("exec", "web.1", "test", "!", "-e", "/run/secrets/db_pass").code == 0,
            timeout=60,
        )
        lab.run("secret", "rm", "db_pass", check=True)
    lab.run("config", "rm", "app.conf", check=True)
    assert lab.json("secret", "ls") == []


def test_an_unknown_secret_is_refused_in_one_line(lab):
    got = lab.run("service", "create", "--name", "nope", "--secret", "missing", "alpine")
    assert got.code != 0
    assert got.err.strip().splitlines() == ["Error: secret not found: missing"]
    assert "nope" not in lab.run("service", "ls", check=True).out


def test_a_stack_makes_and_removes_its_own_secrets_and_configs(lab, tmp_path):
    value = f"stack-{secrets.token_hex(16)}".encode()
    ext = with_input(lab, b"external-value", "secret", "create", "shared_key", "-")
    assert ext.code == 0, ext.err
    (tmp_path / "pw.txt").write_bytes(value)
    (tmp_path / "app.conf").write_text("hello=1\n")
    compose = tmp_path / "stack.yml"
    compose.write_text(
        "version: '3.8'\n"
        "services:\n"
        "  web:\n"
        "    image: alpine\n"
        "    command: sleep 1000\n"
        "    secrets:\n"
        "      - db\n"
        "      - {source: shared_key, target: key, mode: 0400}\n"
        "    configs:\n"
        "      - {source: app, target: /etc/app.conf}\n"
        "secrets:\n"
        "  db: {file: ./pw.txt}\n"
        "  shared_key: {external: true}\n"
        "configs:\n"
        "  app: {file: app.conf}\n"
    )
    out = lab.run("stack", "deploy", "-c", str(compose), "shop", check=True).out
    try:
        assert "Creating secret shop_db\n" in out and "Creating config shop_app\n" in out
        lab.converge("shop_web", 1, timeout=60)
        assert exec_in(lab, "shop_web.1", "cat /run/secrets/db").encode() == value
        assert exec_in(lab, "shop_web.1", "stat -c %a /run/secrets/key") == "400\n"
        assert exec_in(lab, "shop_web.1", "cat /etc/app.conf") == "hello=1\n"
        assert files_holding(state_dirs(lab), [value]) == []
    finally:
        removed = lab.run("stack", "rm", "shop", check=True).out
    assert "Removing secret shop_db\n" in removed
    assert [s["spec"]["name"] for s in lab.json("secret", "ls")] == ["shared_key"]
    assert lab.json("config", "ls") == []
    lab.run("secret", "rm", "shared_key", check=True)


def key_file(lab: SwarmLab, node: str) -> Path:
    return state_dirs(lab) / node / "manager" / "data.key"


def test_a_promoted_manager_receives_the_data_key_and_a_demoted_one_loses_it(lab):
    lab.run("node", "promote", "worker2", check=True)
    try:
        got = wait_for("worker2's data key", lambda: key_file(lab, "worker2").exists(), 60)
        assert got
        key = key_file(lab, "worker2")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(key.parent).st_mode) == 0o700
        assert key.read_bytes() == key_file(lab, "manager1").read_bytes()
        # The new manager serves secrets too (its reads come from its own store).
        lab.wait_for(
            "worker2 to answer as a manager",
            lambda: lab.run("secret", "ls", node="worker2").code == 0,
            timeout=60,
        )
    finally:
        # etcd refuses a membership change until the new member has been healthy for
        # a while ("unhealthy cluster"): the demotion is asked again until it passes.
        lab.wait_for(
            "worker2's demotion",
            lambda: lab.run("node", "demote", "worker2").code == 0,
            timeout=60,
        )
    wait_for("worker2 to forget the key", lambda: not key_file(lab, "worker2").exists(), 60)
