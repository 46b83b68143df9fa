"""One VM: QEMU's command line, its start, its power button.

Software emulation (`-accel tcg`): this machine's /dev/kvm is a paravirtual flavour that
hangs a stock Debian kernel, and the point of the VM lab is Debian's own kernel. TCG's
translation cache is what makes an emulated VM big in RAM; `tb-size` caps it.

The VM looks like a Vagrant VM to its guest: eth0 on a NAT network of its own
(10.0.2.15, gateway 10.0.2.2, resolver 10.0.2.3, as VirtualBox's), eth1 on the lab's
host-only bridge, a virtio disk that is a copy-on-write layer over the box. Its identity
(hostname, eth1's address, the lab's SSH key) reaches it through fw_cfg, read at boot by
the box's vxswarm-seed.service.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

from netagent.contract.errors import KernelError, NotFound
from netagent.lab.record import ProcessRecord
from netagent.lab.vms.plan import VmLab, VmNode
from netagent.lab.vms.wire import open_tap
from netagent.tasks import spawn

QEMU = "qemu-system-x86_64"
SEED_NAME = "opt/org.vxswarm/seed"
#: MB of translated code QEMU keeps per VM; its default (1 GB) makes each VM ~2 GB resident.
TB_SIZE_MB = 256
_START_TIMEOUT = 60.0


def qemu_argv(lab: VmLab, node: VmNode, *, memory_mb: int, cpus: int, tap_fd: int) -> list[str]:
    nat_mac, lab_mac = node.macs(lab.name)
    return [
        QEMU,
        "-name", f"{lab.netns}-{node.name},process={lab.netns}-{node.name}",
        "-machine", "pc",
        "-accel", f"tcg,thread=multi,tb-size={TB_SIZE_MB}",
        "-cpu", "max",
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-drive", f"file={lab.disk(node)},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-netdev", "user,id=nat,net=10.0.2.0/24",
        "-device", f"virtio-net-pci,netdev=nat,mac={nat_mac}",
        "-netdev", f"tap,id=hostonly,fd={tap_fd}",
        "-device", f"virtio-net-pci,netdev=hostonly,mac={lab_mac}",
        "-device", "virtio-rng-pci",
        "-fw_cfg", f"name={SEED_NAME},file={lab.seed(node)}",
        "-display", "none",
        "-vga", "none",
        "-serial", f"file:{lab.console(node)}",
        "-monitor", "none",
        "-qmp", f"unix:{lab.qmp(node)},server=on,wait=off",
        "-pidfile", str(lab.pidfile(node)),
        "-daemonize",
    ]  # fmt: skip


def make_disk(box: Path, disk: Path) -> None:
    """The VM's disk: a qcow2 layer whose reads fall through to the box, never changed."""
    _run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(box), "-F", "qcow2", str(disk)],
        f"make the disk of {disk.parent.name}",
    )


def _run(argv: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise NotFound(
            f"{argv[0]} not found: expected the VM lab's packages "
            "(bash scripts/bootstrap.sh vms installs them)",
            obj=argv[0],
            op=what,
        )
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise KernelError(f"{what}: {argv[0]} failed: {last}", obj=argv[0], op=what)
    return done


def start(lab: VmLab, node: VmNode, *, memory_mb: int, cpus: int) -> ProcessRecord:
    """Power the VM on: QEMU daemonizes once the VM runs; its pid + start time recorded."""
    lab.pidfile(node).unlink(missing_ok=True)
    lab.qmp(node).unlink(missing_ok=True)
    fd = open_tap(lab, node)
    try:
        argv = qemu_argv(lab, node, memory_mb=memory_mb, cpus=cpus, tap_fd=fd)
        _run(argv, f"start VM {node.name}", pass_fds=(fd,), timeout=_START_TIMEOUT)
    finally:
        os.close(fd)
    pid = int(lab.pidfile(node).read_text().strip())
    started = spawn.start_time(pid)
    if started is None:
        raise KernelError(
            f"VM {node.name} stopped right after its start: see {lab.console(node)}",
            obj=node.name,
            op="start VM",
        )
    return ProcessRecord(pid=pid, start_time=started)


def press_power_button(lab: VmLab, node: VmNode, timeout: float = 5.0) -> bool:
    """ACPI power-down through QMP, as `vagrant halt` asks the guest to shut down;
    False if QEMU's socket does not answer (the VM is then stopped by signal)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(lab.qmp(node)))
            reader = sock.makefile("r")
            reader.readline()  # the greeting
            for command in ("qmp_capabilities", "system_powerdown"):
                sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
                while "return" not in (reply := json.loads(reader.readline())):
                    if "error" in reply:
                        return False
            return True
    except (OSError, ValueError):
        return False


def resident_mb(proc: ProcessRecord) -> float | None:
    """The VM's QEMU process's resident memory (what the VM costs the host), in MB."""
    if not spawn.alive(proc.pid, proc.start_time):
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None
