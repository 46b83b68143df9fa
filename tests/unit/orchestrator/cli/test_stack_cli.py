"""`vxswarm stack deploy` checks everything before it talks to a daemon: run with a
daemon address where nothing listens, a bad file fails on the file, a good one only
then on the connection. Also the lines printed for each plan step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestrator.cli.stack import step_line
from orchestrator.stack.deploy import Action, Kind, Step


def deploy(tmp_path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    compose = tmp_path / "stack.yml"
    compose.write_text(text)
    env = {**os.environ, "VXSWARM_HOST": f"unix://{tmp_path}/nobody-listens.sock"}
    env.pop("TAG", None)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", "stack", "deploy", "-c", str(compose),
         *extra, "shop"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_an_invalid_file_is_refused_with_the_key_path_before_any_api_call(tmp_path):
    res = deploy(
        tmp_path, "services:\n  web:\n    image: whoami\n    deploy:\n      replicas: two\n"
    )
    assert res.returncode == 1
    assert res.stderr == "Error: services.web.deploy.replicas: expected an integer, got 'two'\n"
    assert res.stdout == ""


def test_an_unknown_image_is_refused_before_any_api_call(tmp_path):
    res = deploy(tmp_path, "services:\n  db:\n    image: postgres:16\n")
    assert res.returncode == 1
    assert res.stderr.startswith("Error: services.db.image: unknown image 'postgres:16': ")


def test_unsupported_keys_give_one_warning_line_then_the_daemon_is_asked(tmp_path):
    res = deploy(
        tmp_path,
        "services:\n  web:\n    image: whoami${TAG}\n    build: .\n    depends_on: [db]\n"
        "  db:\n    image: alpine\n    restart: always\n",
    )
    lines = res.stderr.splitlines()
    assert lines[0] == 'The "TAG" variable is not set. Defaulting to a blank string.'
    assert lines[1] == "Ignoring unsupported options: build, depends_on, restart"
    assert lines[2].startswith("Error: cannot connect to the vxswarm daemon at unix://")
    assert len(lines) == 3 and res.returncode == 1


def test_a_bad_stack_name_is_refused(tmp_path):
    compose = tmp_path / "s.yml"
    compose.write_text("services: {}\n")
    res = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", "stack", "deploy", "-c", str(compose),
         "a.b"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.startswith("Error: invalid stack name 'a.b': expected letters, digits")


@pytest.mark.parametrize(
    ("step", "line"),
    [
        (Step(Action.CREATE, Kind.NETWORK, "shop_default"), "Creating network shop_default"),
        (Step(Action.CREATE, Kind.SERVICE, "shop_web"), "Creating service shop_web"),
        (
            Step(Action.UPDATE, Kind.SERVICE, "shop_web", id="abc", reason="image, replicas"),
            "Updating service shop_web (id: abc): image, replicas changed",
        ),
        (Step(Action.REMOVE, Kind.SERVICE, "shop_db"), "Removing service shop_db"),
        (Step(Action.REMOVE, Kind.NETWORK, "shop_default"), "Removing network shop_default"),
        (Step(Action.KEEP, Kind.SERVICE, "shop_db"), "Service shop_db is up to date"),
        (Step(Action.KEEP, Kind.NETWORK, "shop_default"), None),
    ],
)
def test_each_step_prints_like_docker(step, line):
    assert step_line(step) == line
