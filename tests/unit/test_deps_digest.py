"""scripts/deps_digest.py: what decides whether the venv is reinstalled and the VM box rebuilt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "deps_digest.py"

PYPROJECT = """
[build-system]
requires = ["setuptools==80.9.0"]

[project]
name = "vxswarm"
dependencies = ["pydantic==2.11.7"]

[tool.pytest.ini_options]
timeout = 300
"""


def digest(tmp_path: Path, pyproject: str, lock: str = "six==1.16.0\n") -> str:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "requirements.lock").write_text(lock)
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tmp_path / "pyproject.toml"),
            str(tmp_path / "requirements.lock"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_tool_settings_change_nothing_dependencies_and_the_lock_do(tmp_path):
    base = digest(tmp_path, PYPROJECT)
    assert len(base) == 64
    assert digest(tmp_path, PYPROJECT.replace("timeout = 300", "timeout = 600")) == base
    assert digest(tmp_path, PYPROJECT.replace("2.11.7", "2.11.8")) != base
    assert digest(tmp_path, PYPROJECT.replace("80.9.0", "80.9.1")) != base
    assert digest(tmp_path, PYPROJECT, lock="six==1.17.0\n") != base
