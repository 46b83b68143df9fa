"""One etcd member as a child process of the daemon: its command line and its keeper.

Every manager runs one (Swarm runs Raft in every manager the same way). Where it lives:
  <dir>/data          etcd's data directory (0700)
  <dir>/client:2379   its client socket: a unix socket, reached only by root on the node
  <dir>/etcd.log      what it says (0600)
Peers talk on `peer_url`: `https://<advertise addr>:2380` with mutual TLS from the
cluster CA, where only certificates naming `swarm-manager` (managers') are accepted; a
unix socket where a member never has peers (the unit tests' shared store).

The keeper restarts the member when it dies (not when it was told to stop), and asks
the kernel to kill it if the daemon dies (PR_SET_PDEATHSIG): a member never outlives the
daemon that owns it (SIGKILL, as a machine losing power), so `lab down` or a stopped
VM leaves none behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netagent.contract.errors import InvalidArgument, Unavailable
from orchestrator.etcd.client import EtcdClient, EtcdError

log = logging.getLogger(__name__)

ETCD = "etcd"
PEER_PORT = 2380
CLIENT_SOCKET = "client:2379"
#: Raft timings for a LAN (etcd's defaults are for WANs: 100 ms / 1000 ms here, with
#: pre-vote so a member back from a partition does not depose a healthy leader).
HEARTBEAT_MS = 100
ELECTION_MS = 1000
#: Only managers' certificates carry this name (orchestrator.ca.tls.MANAGER_NAME).
PEER_NAME = "swarm-manager"
#: Longest a member may take to answer on its socket after it started.
READY_TIMEOUT = 15.0
#: A manager's member holds a small store: collect garbage sooner than Go's default
#: (GOGC=100) and aim the heap at a soft limit, for the member's RSS goal (40 MB).
GO_MEMORY = {"GOGC": "50", "GOMEMLIMIT": "24MiB"}
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class PeerTLS:
    """The node's own key, certificate and the swarm's roots (orchestrator.ca.files)."""

    cert: Path
    key: Path
    trusted_ca: Path


@dataclass(frozen=True)
class MemberConfig:
    name: str
    dir: Path
    peer_url: str
    #: name -> peer URL of every voting member when this one starts for the first time.
    initial_cluster: dict[str, str]
    #: "new" for the first member of a swarm, "existing" for one joining it.
    initial_state: str = "new"
    cluster_token: str = "vxswarm"
    tls: PeerTLS | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Start as the only member of its cluster, whatever the data says (etcd's own
    #: recovery from a lost quorum; `swarm init --force-new-cluster`).
    force_new_cluster: bool = False

    def __post_init__(self) -> None:
        if self.peer_url.startswith("https://"):
            if self.tls is None:
                raise InvalidArgument(
                    f"etcd peer URL {self.peer_url} needs TLS files: expected the node's "
                    "certificate, key and roots",
                    obj=self.peer_url,
                    op="etcd",
                )
        elif not self.peer_url.startswith("unix://"):
            # Never plain http on a network: peers speak mutual TLS or a local socket.
            raise InvalidArgument(
                f"invalid etcd peer URL {self.peer_url!r}: expected https://ADDR:{PEER_PORT} "
                "or unix://NAME:PORT",
                obj=self.peer_url,
                op="etcd",
            )
        if self.initial_state not in ("new", "existing"):
            raise InvalidArgument(
                f"invalid initial cluster state {self.initial_state!r}: expected new or existing"
            )

    @classmethod
    def alone(cls, name: str, directory: Path) -> MemberConfig:
        """A member that never has peers: its peer socket is a unix one in `directory`."""
        peer = "unix://peer:2380"
        return cls(name=name, dir=directory, peer_url=peer, initial_cluster={name: peer})

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> Path:
        return self.dir / CLIENT_SOCKET

    @property
    def log_path(self) -> Path:
        return self.dir / "etcd.log"

    def argv(self) -> list[str]:
        client = f"unix://{CLIENT_SOCKET}"  # relative to the member's cwd, `dir`
        peers = ",".join(f"{n}={u}" for n, u in sorted(self.initial_cluster.items()))
        argv = [
            ETCD,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={peers}",
            f"--initial-cluster-state={self.initial_state}",
            f"--initial-cluster-token={self.cluster_token}",
            f"--heartbeat-interval={HEARTBEAT_MS}",
            f"--election-timeout={ELECTION_MS}",
            "--pre-vote=true",
            # A tick of a big service writes its tasks in one transaction.
            "--max-txn-ops=16384",
            "--max-request-bytes=10485760",
            # Bounded history and memory: raft snapshots often, old revisions compacted.
            "--snapshot-count=5000",
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000",
            "--logger=zap",
            "--log-level=warn",
            f"--log-outputs={self.log_path}",
        ]
        if self.force_new_cluster:
            argv.append("--force-new-cluster")
        if self.tls is not None:
            argv += [
                f"--peer-cert-file={self.tls.cert}",
                f"--peer-key-file={self.tls.key}",
                f"--peer-trusted-ca-file={self.tls.trusted_ca}",
                "--peer-client-cert-auth=true",
                f"--peer-cert-allowed-hostname={PEER_NAME}",
            ]
        return argv


def _child_setup(netns: str) -> Callable[[], None]:
    """What the child does before exec: die with the daemon, and live in the network
    namespace of the daemon's main thread. A thread that spawns may have entered another
    namespace for its work (a task's, a sandbox's), and a new thread inherits it."""

    def setup() -> None:  # pragma: no cover - runs in the child
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        fd = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                os._exit(126)
        finally:
            os.close(fd)
        os.setsid()

    return setup


class Member:
    """Starts, keeps and stops one etcd member. `client` talks to it."""

    def __init__(self, cfg: MemberConfig, *, on_restart: Callable[[], None] = lambda: None):
        self.cfg = cfg
        self.client = EtcdClient(cfg.socket)
        self._on_restart = on_restart
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._keeper: threading.Thread | None = None
        self.restarts = 0
        #: The daemon's own network namespace (its main thread's), where the member runs.
        self._netns = f"/proc/{os.getpid()}/ns/net"

    @property
    def running(self) -> bool:
        """Started and kept (it may be between two lives after a crash)."""
        return self._keeper is not None and self._keeper.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the member and its keeper; return once it answers on its socket."""
        self.cfg.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.cfg.dir, 0o700)
        self._stopping.clear()
        # The keeper thread spawns the process: PR_SET_PDEATHSIG fires when the thread
        # that forked ends, so it must be one that lives as long as the member.
        self._keeper = threading.Thread(target=self._keep, name="etcd-keeper", daemon=True)
        self._keeper.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        try:
            self.wait_ready(READY_TIMEOUT)
        except Unavailable:
            self.stop()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = os.open(self.cfg.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.cfg.socket.unlink(missing_ok=True)  # a stale one from a killed member
            return subprocess.Popen(
                self.cfg.argv(),
                cwd=self.cfg.dir,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env={**os.environ, **GO_MEMORY, **self.cfg.extra_env},
                preexec_fn=_child_setup(self._netns),
            )
        finally:
            os.close(fd)

    def _keep(self) -> None:
        backoff = 0.5
        try:
            self._proc = self._spawn()
        except OSError as err:
            self._error = Unavailable(f"cannot start etcd ({ETCD}): {err}", op="etcd")
            self._started.set()
            return
        self._started.set()
        while True:
            started = time.monotonic()
            code = self._proc.wait()
            if self._stopping.is_set():
                return
            log.error(
                "etcd member %s exited (%s): restarting; see %s",
                self.cfg.name,
                code,
                self.cfg.log_path,
            )
            if time.monotonic() - started > 30:
                backoff = 0.5
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 5.0)
            try:
                self._proc = self._spawn()
            except OSError as err:
                log.error("cannot restart etcd member %s: %s", self.cfg.name, err)
                continue
            self.restarts += 1
            self._on_restart()

    def wait_ready(self, timeout: float) -> None:
        """Until the member answers on its socket; Unavailable with its last words if not."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                raise Unavailable(
                    f"etcd member {self.cfg.name} exited ({proc.returncode}): {self.last_words()}",
                    op="etcd",
                )
            try:
                self.client.status()
                return
            except EtcdError:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"etcd member {self.cfg.name} did not answer within {timeout:g} s: "
                        f"{self.last_words()}",
                        op="etcd",
                    ) from None
                time.sleep(0.05)

    def last_words(self) -> str:
        """Why etcd stopped: its panic's message (the goroutine dump after it says
        nothing), else the last line it logged, or a pointer to its log."""
        try:
            lines = self.cfg.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        if not lines:
            return f"nothing in {self.cfg.log_path}"
        panics = [line for line in lines[-200:] if line.startswith("panic: ")]
        return (panics[-1] if panics else lines[-1])[-300:]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; the keeper does not restart it."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._keeper is not None:
            self._keeper.join(timeout)
        self.client.close()
