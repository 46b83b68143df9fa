"""The README's main job, `vxswarm lab demo`, runs start to end and leaves nothing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_lab_demo_plays_the_tutorial_and_cleans_up(tmp_path):
    name = f"d{secrets.token_hex(3)}"
    env = {**os.environ, "VXSWARM_LAB_ROOT": str(tmp_path)}
    env.pop("VXSWARM_HOST", None)
    p = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", "lab", "demo", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = p.stdout
    assert "1 packets transmitted, 1 received" in out  # the ping over the overlay
    assert "$ vxswarm exec shell.1 dig +short web\n10.0.0.2\n" in out  # the VIP
    assert "I am " in out and "*:8080->80/tcp" in out  # the VIP answered; PORTS shown
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"vx-{name}-" not in netns
    assert not (tmp_path / name).exists()
