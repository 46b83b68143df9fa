"""The etcd member process: its command line, its checks, its keeper and its end."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netagent.contract.errors import InvalidArgument, Unavailable
from orchestrator.etcd.member import Member, MemberConfig, PeerTLS


def _tls(tmp_path: Path) -> PeerTLS:
    return PeerTLS(cert=tmp_path / "c.crt", key=tmp_path / "c.key", trusted_ca=tmp_path / "ca")


def test_a_networked_member_speaks_mutual_tls_with_managers_only(tmp_path):
    cfg = MemberConfig(
        name="n1",
        dir=tmp_path,
        peer_url="https://192.168.56.11:2380",
        initial_cluster={"n1": "https://192.168.56.11:2380", "n0": "https://192.168.56.10:2380"},
        initial_state="existing",
        cluster_token="c1",
        tls=_tls(tmp_path),
    )
    argv = cfg.argv()
    assert "--listen-client-urls=unix://client:2379" in argv  # no client port at all
    assert "--listen-peer-urls=https://192.168.56.11:2380" in argv
    assert "--peer-client-cert-auth=true" in argv
    assert "--peer-cert-allowed-hostname=swarm-manager" in argv
    assert "--initial-cluster=n0=https://192.168.56.10:2380,n1=https://192.168.56.11:2380" in argv
    assert "--initial-cluster-state=existing" in argv
    assert {"--heartbeat-interval=100", "--election-timeout=1000", "--pre-vote=true"} <= set(argv)
    assert "--force-new-cluster" not in argv
    assert cfg.socket == tmp_path / "client:2379"


@pytest.mark.parametrize(
    ("url", "tls", "message"),
    [
        ("http://192.168.56.11:2380", True, "invalid etcd peer URL 'http://192.168.56.11:2380'"),
        ("https://192.168.56.11:2380", False, "needs TLS files"),
    ],
)
def test_no_peer_listener_without_tls(tmp_path, url, tls, message):
    with pytest.raises(InvalidArgument, match=message):
        MemberConfig(
            name="n1", dir=tmp_path, peer_url=url, initial_cluster={},
            tls=_tls(tmp_path) if tls else None,
        )  # fmt: skip


def test_a_member_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path):
    cfg = MemberConfig.alone("bad", tmp_path)
    member = Member(
        MemberConfig(**{**cfg.__dict__, "initial_state": "existing", "initial_cluster": {}})
    )
    with pytest.raises(Unavailable, match="etcd member bad exited"):
        member.start()
    assert not member.running
    assert member.pid is None or not Path(f"/proc/{member.pid}").exists()


def test_the_member_dies_with_the_daemon_that_started_it(tmp_path):
    # A daemon (here: a Python process) starts a member and is SIGKILLed.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from orchestrator.etcd.member import Member, MemberConfig
        m = Member(MemberConfig.alone("orphan", Path({str(tmp_path)!r})))
        m.start()
        print(m.pid, flush=True)
        time.sleep(60)
        """
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(daemon.stdout.readline())
        assert Path(f"/proc/{pid}").exists()
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _alive(pid):
            assert time.monotonic() < deadline, f"etcd {pid} outlived its daemon"
            time.sleep(0.05)
    finally:
        daemon.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_stop_ends_the_member_and_its_keeper(tmp_path):
    member = Member(MemberConfig.alone("m", tmp_path))
    member.start()
    pid = member.pid
    member.stop()
    assert not member.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_last_words_are_the_panic_not_the_goroutine_dump_after_it(tmp_path):
    member = Member(MemberConfig.alone("m", tmp_path))
    assert member.last_words() == f"nothing in {tmp_path / 'etcd.log'}"
    member.cfg.log_path.write_text(
        '{"level":"warn","msg":"slow"}\n'
        "panic: tocommit(20) is out of range [lastIndex(0)]\n\n"
        "goroutine 97 [running]:\n"
        "created by go.etcd.io/etcd/raft.RestartNode\n"
        "\tgo.etcd.io/etcd/raft/node.go:242 +0x24a\n"
    )
    assert member.last_words() == "panic: tocommit(20) is out of range [lastIndex(0)]"
    member.cfg.log_path.write_text('{"level":"warn","msg":"slow"}\n')
    assert member.last_words() == '{"level":"warn","msg":"slow"}'
