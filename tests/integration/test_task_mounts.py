"""A task's bind, volume and tmpfs mounts, secrets and configs, on the real kernel: seen
from inside the task (as `vxswarm exec` enters it), absent from the node's mount table
and filesystem, the secret's bytes on no file of the node's state, all gone with the task."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from netagent.agent.dataplane import wipe_node
from netagent.contract.desired import Mount, TaskFile, TaskSpec, TaskState
from netagent.tasks.enter import task_exec_argv
from netagent.tasks.logs import LogReader
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.root


def inside(pid: int, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in the task as `vxswarm exec` does."""
    return subprocess.run(
        task_exec_argv(pid, ["sh", "-c", script]), capture_output=True, text=True, timeout=30
    )


def mnt_ns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def processes_in(ns: str) -> list[int]:
    """Every process whose mount namespace is `ns`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def mount_points(pid: int) -> list[str]:
    """The mount points in the mount table of process `pid` (field 5 of mountinfo)."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return [line.split()[4].replace("\\040", " ") for line in lines]


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def sources(tmp_path, run_id):
    """Two node directories to bind: one the task may write, one it may only read."""
    rw, ro = tmp_path / f"src-rw-{run_id}", tmp_path / f"src-ro-{run_id}"
    for d in (rw, ro):
        d.mkdir()
        (d / "hello").write_text(f"hello from {d.name}\n")
    return rw, ro


def test_mounts_secrets_and_configs_live_in_the_task_only(dp_cluster, sources, run_id):
    c = dp_cluster
    rw, ro = sources
    top = f"/vxt{run_id}"  # no such directory on the node: it must not be created there
    secret = secrets.token_hex(24).encode()
    config = b"listen 8080\n"
    spec = TaskSpec(
        image="host",
        command=("sh", "-c", f"cat {top}/ro/hello > {top}/tmp/seen; exec sleep 1000"),
        mounts=(
            Mount(type="bind", source=str(rw), target=f"{top}/rw"),
            Mount(type="bind", source=str(ro), target=f"{top}/ro", readonly=True),
            Mount(type="tmpfs", target=f"{top}/tmp", tmpfs_size=1 << 20, tmpfs_mode=0o1770),
            Mount(type="volume", source=f"data{run_id}", target=f"{top}/vol"),
        ),
        files=(
            TaskFile(kind="secret", id="s1", name="db_pass", target="/run/secrets/db_pass",
                     data=base64.b64encode(secret).decode(), uid=33, gid=44, mode=0o400),
            TaskFile(kind="config", id="c1", name="app", target=f"/etc/vxt{run_id}.conf",
                     data=base64.b64encode(config).decode(), mode=0o440),
        ),
    )  # fmt: skip
    task = c.task(1).model_copy(update={"spec": spec})
    c.apply({0: [task]}, only=0)
    pid = c.wait_state(0, task.id, TaskState.RUNNING).pid

    # The workload sees its mounts (it copied a file from the ro bind to the tmpfs).
    seen = wait_for("the workload's copy", lambda: inside(pid, f"cat {top}/tmp/seen").stdout)
    assert seen == f"hello from {ro.name}\n"
    assert inside(pid, f"cat {top}/rw/hello").stdout == f"hello from {rw.name}\n"
    assert inside(pid, f"echo written > {top}/rw/new").returncode == 0
    assert (rw / "new").read_text() == "written\n"  # a bind is the node's directory
    refused = inside(pid, f"echo x > {top}/ro/new")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert not (ro / "new").exists()
    tmpfs = inside(pid, f"stat -f -c %T {top}/tmp; stat -c %a {top}/tmp; df -B1 {top}/tmp")
    kind, mode, *df = tmpfs.stdout.splitlines()
    assert (kind, mode) == ("tmpfs", "1770") and " 1048576 " in df[-1]
    assert inside(pid, f"echo kept > {top}/vol/file").returncode == 0
    volume = c.state_dir(0) / "volumes" / f"data{run_id}"
    assert (volume / "file").read_text() == "kept\n"

    # Secrets and configs: content, owner and mode; read-only to the task.
    got = inside(pid, "cat /run/secrets/db_pass; stat -c '%u %g %a' /run/secrets/db_pass")
    assert got.stdout == secret.decode() + "33 44 400\n"
    got = inside(pid, f"cat /etc/vxt{run_id}.conf; stat -c '%a' /etc/vxt{run_id}.conf")
    assert got.stdout == config.decode() + "440\n"
    assert inside(pid, "echo x > /run/secrets/other").returncode != 0
    assert inside(pid, f"echo x > /etc/vxt{run_id}.conf").returncode != 0
    # The rest of the node's tree is still there, in /etc too.
    rest = inside(pid, "test -e /etc/passwd && test -d /proc/self && test -d /usr/bin")
    assert rest.returncode == 0

    # Nothing of it in the node's mount namespace or on its filesystem.
    points = mount_points(os.getpid())
    assert not [p for p in points if p == top or p.startswith(f"{top}/")]
    assert "/run/secrets" not in points and f"/etc/vxt{run_id}.conf" not in points
    inner = mount_points(pid)  # relative to the task's root, as it sees them
    for target in ("rw", "ro", "tmp", "vol"):
        assert f"{top}/{target}" in inner
    assert "/run/secrets" in inner and f"/etc/vxt{run_id}.conf" in inner
    assert not os.path.lexists(top) and not os.path.lexists(f"/etc/vxt{run_id}.conf")
    assert mnt_ns(pid) != mnt_ns(os.getpid())
    # The secret's bytes: in no file of the node's state, not in the shim's argv or env.
    assert files_holding(c.state_dir(0), secret) == []
    assert secret not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert secret not in Path(f"/proc/{pid}/environ").read_bytes()

    # Removed: its mount namespace (with every mount and tmpfs in it) has no process
    # left; the named volume stays, as docker keeps volumes.
    ns = mnt_ns(pid)
    c.apply({0: []}, only=0)
    wait_for("the task's mount namespace to be gone", lambda: not processes_in(ns), timeout=20)
    assert (volume / "file").read_text() == "kept\n"
    assert not os.path.lexists(top)
    assert files_holding(c.state_dir(0), secret) == []
    # The node's wipe (lab down, a node powered off) removes its volumes too.
    c.dps[0].close()
    wipe_node(c.state_dir(0), c.names[0], c.nodes[0].ns)
    assert not (c.state_dir(0) / "volumes").exists()


def test_a_missing_bind_source_rejects_the_task_with_dockers_message(dp_cluster, run_id):
    c = dp_cluster
    source = f"/nonexistent-vxt{run_id}"
    spec = TaskSpec(image="host", command=("sleep", "1000"),
                    mounts=(Mount(type="bind", source=source, target="/data"),))  # fmt: skip
    task = c.task(1).model_copy(update={"spec": spec})
    c.apply({0: [task]}, only=0)
    status = c.wait_state(0, task.id, TaskState.REJECTED)
    assert status.err == (
        f'invalid mount config for type "bind": bind source path does not exist: {source}'
    )


def test_a_mount_the_kernel_refuses_fails_the_task_with_the_reason(dp_cluster, tmp_path):
    c = dp_cluster
    source = tmp_path / "a-file"
    source.write_text("x")
    # A file cannot be bound over a directory: the shim fails before the workload runs.
    spec = TaskSpec(image="host", command=("sleep", "1000"),
                    mounts=(Mount(type="bind", source=str(source), target="/usr"),))  # fmt: skip
    task = c.task(1).model_copy(update={"spec": spec})
    c.apply({0: [task]}, only=0)
    status = c.wait_state(0, task.id, TaskState.FAILED)
    assert status.err == "error mounting: cannot mount on /usr: is a directory"


def test_a_mount_over_the_nodes_state_directory_keeps_the_exit_status_and_log(dp_cluster, sources):
    c = dp_cluster
    rw, _ = sources
    # The test's node state is under /tmp, as is the bind source: the task's own empty
    # /tmp must hide neither the source (mounted after it) nor the shim's exit file and log.
    assert str(c.state_dir(0)).startswith("/tmp/") and str(rw).startswith("/tmp/")
    script = "ls -A /tmp | wc -l; cat /data/hello; exit 3"
    spec = TaskSpec(image="host", command=("sh", "-c", script),
                    mounts=(Mount(type="tmpfs", target="/tmp"),
                            Mount(type="bind", source=str(rw), target="/data")))  # fmt: skip
    task = c.task(1).model_copy(update={"spec": spec})
    c.apply({0: [task]}, only=0)
    final = c.wait_state(0, task.id, TaskState.FAILED)
    assert (final.exit_code, final.err) == (3, "task: non-zero exit (3)")
    log = c.state_dir(0) / "dataplane" / "logs" / f"{task.id}.log"
    with LogReader(log) as reader:  # docker's json-file lines
        assert [e.log for e in reader.history()] == ["0\n", f"hello from {rw.name}\n"]
