"""The VM lab's opt-in suite: three Debian VMs booted under QEMU (`vxswarm lab vms up`).

Marked `vms` and deselected from the regular suite (pyproject.toml's addopts): it takes
minutes and GBs of RAM. Run it with `bash scripts/bootstrap.sh vms` (the README's third
command), or `pytest -m vms tests/vms`. One lab for the whole module; its bring-up
phases and the tutorial's timings are printed at the end of the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from netagent.lab.vms.driver import VmLabHandle

#: Run the tests on a VM lab that is already up (its name), instead of a new one; the
#: tests leave services behind, so use a fresh lab for each run.
REUSE_ENV = "VXSWARM_VM_LAB"
#: What the run measured, printed in the terminal summary.
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def vmlab(tmp_path_factory) -> Iterator[VmLabHandle]:
    reuse = os.environ.get(REUSE_ENV)
    if reuse:  # a lab the developer brought up (`vxswarm lab vms up --name N`): kept
        yield VmLabHandle.attach(reuse)
        return
    start = time.monotonic()
    handle = VmLabHandle.create(tmp_path_factory.mktemp("vmlabs"))
    TIMINGS["lab vms up (all)"] = round(time.monotonic() - start, 1)
    TIMINGS.update({f"  {phase}": secs for phase, secs in handle.timings.items()})
    try:
        yield handle
    finally:
        handle.down()


@pytest.fixture
def timed():
    """timed(name): a context manager adding how long its block took to the summary."""

    class _Timed:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            self.start = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            TIMINGS[self.name] = round(time.monotonic() - self.start, 1)

    return _Timed


def pytest_terminal_summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("VM lab timings (seconds)")
    for name, secs in TIMINGS.items():
        terminalreporter.write_line(f"{name:<48} {secs:>8.1f}")
