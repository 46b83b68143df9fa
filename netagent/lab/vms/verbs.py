"""`vxswarm lab vms ...`: three Debian VMs in the Vagrantfile's shape, booted and provisioned here.

`up` does what `vagrant up` does with the project's Vagrantfile, with QEMU in place of
VirtualBox or libvirt: the box (scripts/build-box.sh, cached), one VM per node on a
host-only network, the checkout rsynced to /vagrant, then vagrant/provision.sh as written:
manager1 first (`swarm init`), then the workers side by side with the worker token taken
from manager1 over SSH, as the Vagrantfile's header tells a user to. It ends when
`node ls` on manager1 shows every node Ready, and reports how long each phase took.

`down` leaves nothing: every QEMU process this lab started (by pid and start time), the
namespace with its bridge and taps, and the lab's directory with its disks and key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netagent.contract.errors import Conflict, InvalidArgument, KernelError, NotFound
from netagent.kernel import netns
from netagent.lab import nodes as processes
from netagent.lab.record import ProcessRecord
from netagent.lab.topology import CLIENT, DEFAULT_LAB, lab_root
from netagent.lab.vms import guest, qemu, wire
from netagent.lab.vms.plan import (
    BOX_ENV,
    DEFAULT_BOX_DIR,
    DEFAULT_MEMORY_MB,
    VmLab,
    VmNode,
    box_disk,
    render_seed,
)
from netagent.lab.vms.record import VmLabRecord, list_labs, load, resolve_name, save
from netagent.tasks.spawn import CODE_ROOT

#: Under software emulation a cold boot takes ~30-90 s per VM, three at once on two cores.
BOOT_TIMEOUT = 900.0
READY_TIMEOUT = 300.0
HALT_TIMEOUT = 180.0
_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "rsync")

Echo = Callable[[str], None]


@dataclass
class UpResult:
    name: str
    box: str
    #: Seconds per phase, in order: box, boot, sync, provision manager, provision workers, ready.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.timings.values())


@dataclass
class VmView:
    name: str
    role: str
    state: str
    ip: str
    pid: int | None
    rss_mb: float | None


def _lab(name: str | None) -> VmLab:
    root = lab_root()
    return VmLab(resolve_name(name, root, DEFAULT_LAB), root)


def box_dir() -> Path:
    value = os.environ.get(BOX_ENV)
    return Path(value) if value else DEFAULT_BOX_DIR


def _check_tools() -> None:
    for tool in _TOOLS:
        if shutil.which(tool) is None:
            raise NotFound(
                f"{tool} not found: expected the VM lab's packages "
                "(bash scripts/bootstrap.sh vms installs them)",
                obj=tool,
                op="lab vms up",
            )
    if not Path("/dev/net/tun").exists():
        raise NotFound(
            "/dev/net/tun not found: expected the tun module", obj="tun", op="lab vms up"
        )


def build_box(out: Path, echo: Echo) -> Path:
    """scripts/build-box.sh, its progress lines passed on: a no-op when the cached box is
    up to date, a few minutes when not."""
    script = Path(CODE_ROOT) / "scripts" / "build-box.sh"
    proc = subprocess.Popen(
        ["bash", str(script), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    last = "no output"
    for line in proc.stderr:
        last = line.rstrip()
        echo(last)
    if proc.wait() != 0:
        raise KernelError(f"building the box failed: {last}", obj=str(out), op="build box")
    return box_disk(out)


def _phase(timings: dict[str, float], name: str, step: Callable[[], object]) -> None:
    start = time.monotonic()
    step()
    timings[name] = round(time.monotonic() - start, 1)


def up(
    name: str | None,
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    cpus: int = 1,
    keep_on_error: bool = False,
    echo: Echo = guest.echo_err,
) -> UpResult:
    lab = _lab(name)
    if not 256 <= memory_mb <= 65536:
        raise InvalidArgument(
            f"invalid --memory {memory_mb}: expected MB from 256 to 65536",
            obj=str(memory_mb),
            op="lab vms up",
        )
    if not 1 <= cpus <= 16:
        raise InvalidArgument(
            f"invalid --cpus {cpus}: expected 1 to 16", obj=str(cpus), op="lab vms up"
        )
    if lab.record_path.exists() or netns.exists(lab.netns):
        raise Conflict(
            f"VM lab {lab.name!r} is already up: 'vxswarm lab vms down --name {lab.name}' first",
            obj=lab.name,
            op="lab vms up",
        )
    _check_tools()
    result = UpResult(name=lab.name, box="")
    box: list[Path] = []
    _phase(result.timings, "box", lambda: box.append(build_box(box_dir(), echo)))
    result.box = str(box[0])
    record = VmLabRecord(name=lab.name, box=result.box, memory_mb=memory_mb, cpus=cpus)
    try:
        _create(lab, record, box[0], echo, result)
    except BaseException:
        if not keep_on_error:
            echo(f"lab vms up: failed; removing VM lab {lab.name} (--keep-on-error keeps it)")
            down(lab.name)
        raise
    return result


def _create(lab: VmLab, record: VmLabRecord, box: Path, echo: Echo, result: UpResult) -> None:
    lab.dir.mkdir(mode=0o700, parents=True, exist_ok=False)
    save(lab, record)
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"vxswarm-{lab.netns}",
            "-f",
            str(lab.key),
        ],
        check=True,
        capture_output=True,
    )
    public_key = lab.key.with_suffix(".pub").read_text()
    wire.build(lab)
    echo(f"lab vms: booting {', '.join(n.name for n in lab.nodes)} (QEMU, software emulation)")

    def boot() -> None:
        for node in lab.nodes:
            lab.node_dir(node).mkdir(mode=0o700)
            qemu.make_disk(box, lab.disk(node))
            lab.seed(node).write_text(render_seed(node, public_key))
            lab.seed(node).chmod(0o600)
            record.vm(node.name).qemu = _start(lab, record, node)
        guest.in_parallel({n.name: _waiter(lab, record, n) for n in lab.nodes})

    _phase(result.timings, "boot", boot)
    _phase(
        result.timings,
        "sync",
        lambda: guest.in_parallel(
            {n.name: (lambda n=n: guest.sync_checkout(lab, n, Path(CODE_ROOT))) for n in lab.nodes}
        ),
    )
    manager, workers = lab.manager, lab.nodes[1:]
    _phase(result.timings, "provision manager", lambda: guest.provision(lab, manager, "", echo))
    token = guest.check(lab, manager, ["vxswarm", "swarm", "join-token", "-q", "worker"]).strip()
    _phase(
        result.timings,
        "provision workers",
        lambda: guest.in_parallel(
            {n.name: (lambda n=n: guest.provision(lab, n, token, echo)) for n in workers}
        ),
    )
    _phase(result.timings, "ready", lambda: wait_ready(lab, len(lab.nodes)))


def _start(lab: VmLab, record: VmLabRecord, node: VmNode) -> ProcessRecord:
    proc = qemu.start(lab, node, memory_mb=record.memory_mb, cpus=record.cpus)
    record.vm(node.name).qemu = proc
    save(lab, record)
    return proc


def _waiter(lab: VmLab, record: VmLabRecord, node: VmNode) -> Callable[[], float]:
    proc = record.vm(node.name).qemu
    return lambda: guest.wait_for_ssh(lab, node, BOOT_TIMEOUT, lambda: processes.is_running(proc))


def node_states(lab: VmLab) -> dict[str, str]:
    """HOSTNAME -> STATUS of `vxswarm node ls` on manager1."""
    out = guest.check(
        lab, lab.manager, ["vxswarm", "node", "ls", "--format", "{{.Hostname}} {{.Status}}"]
    )
    return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())


def wait_ready(lab: VmLab, count: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        states = node_states(lab)
        if sum(state == "Ready" for state in states.values()) >= count:
            return
        if time.monotonic() > deadline:
            raise KernelError(
                f"timed out after {timeout:.0f} s waiting for {count} nodes Ready: {states}",
                obj=lab.name,
                op="lab vms up",
            )
        time.sleep(2)


def down(name: str | None) -> list[str]:
    """Stop every VM, delete the namespace and the lab's files; what was removed."""
    lab = _lab(name)
    removed: list[str] = []
    try:
        record = load(lab)
    except NotFound:
        record = None
    if record is not None:
        procs = [vm.qemu for vm in record.vms if vm.qemu is not None]
        live = [p for p in procs if processes.is_running(p)]
        processes.stop_all(live, graceful=True)
        removed += [f"VM {vm.name}" for vm in record.vms if vm.qemu in live]
    if wire.destroy(lab):
        removed.append(f"netns {lab.netns}")
    if lab.dir.exists():
        shutil.rmtree(lab.dir)
        removed.append(str(lab.dir))
    if not removed:
        raise NotFound(f"no VM lab {lab.name!r} is up", obj=lab.name, op="lab vms down")
    return removed


def ls(name: str | None) -> tuple[str, list[VmView]]:
    lab = _lab(name)
    record = load(lab)
    rows = []
    for node in lab.nodes:
        proc = record.vm(node.name).qemu
        running = processes.is_running(proc)
        rows.append(
            VmView(
                name=node.name,
                role=str(node.role),
                state="running" if running else "poweroff",
                ip=str(node.ip),
                pid=proc.pid if running and proc else None,
                rss_mb=qemu.resident_mb(proc) if running and proc else None,
            )
        )
    return lab.name, rows


def labs() -> list[str]:
    return list_labs(lab_root())


def stop(name: str | None, node_name: str, *, force: bool = False) -> str:
    """Power a VM off: the ACPI button (a clean guest shutdown, as `vagrant halt`), or
    with force, at once (as pulling the plug)."""
    lab = _lab(name)
    record = load(lab)
    node = lab.node(node_name)
    proc = record.vm(node.name).qemu
    if not processes.is_running(proc):
        return f"{node.name} is already powered off"
    assert proc is not None
    how = "powered off"
    if (
        force
        or not qemu.press_power_button(lab, node)
        or not processes.wait_gone(proc, HALT_TIMEOUT)
    ):
        processes.stop(proc, graceful=False)
        how = (
            "powered off (forced)" if force else "powered off (forced: the guest did not shut down)"
        )
    record.vm(node.name).qemu = None
    save(lab, record)
    return f"{node.name} {how}"


def start(name: str | None, node_name: str) -> float:
    """Power a VM on again from its own disk; seconds until it answers on SSH."""
    lab = _lab(name)
    record = load(lab)
    node = lab.node(node_name)
    if processes.is_running(record.vm(node.name).qemu):
        raise Conflict(f"VM {node.name} is already running", obj=node.name, op="lab vms start")
    wire.build(lab)
    _start(lab, record, node)
    return _waiter(lab, record, node)()


def rsync(name: str | None, node_names: tuple[str, ...]) -> list[str]:
    """The checkout to /vagrant again, on the VMs named (default: all), as `vagrant rsync`;
    a running daemon keeps its code until restarted (`sudo systemctl restart vxswarm`)."""
    lab = _lab(name)
    load(lab)
    chosen = [lab.node(n) for n in node_names] if node_names else list(lab.nodes)
    guest.in_parallel(
        {n.name: (lambda n=n: guest.sync_checkout(lab, n, Path(CODE_ROOT))) for n in chosen}
    )
    return [n.name for n in chosen]


def ssh_argv(name: str | None, node_name: str, remote: str | None) -> list[str]:
    """How to run `remote` (a shell command line; None: a shell) on a VM, or on the
    client (the lab's namespace, 192.168.56.1)."""
    lab = _lab(name)
    load(lab)
    if node_name == CLIENT:
        return guest.client_argv(lab, remote)
    return guest.ssh_argv(lab, lab.node(node_name), remote, tty=remote is None)
