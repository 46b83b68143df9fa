"""What this node's machine has: its CPUs and memory, as docker reports them in a
node's Description.Resources (NanoCPUs from the CPUs this process may run on, as Go's
runtime.NumCPU counts; MemoryBytes from MemTotal). Lab nodes share one machine, so
every lab node reports the host's."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from netagent.contract.desired import Resources

NANO = 1_000_000_000


@functools.cache
def machine_resources() -> Resources:
    cpus = len(os.sched_getaffinity(0))
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024  # the kernel counts kB
            break
    return Resources(nano_cpus=cpus * NANO, memory_bytes=memory)
