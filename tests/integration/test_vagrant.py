"""The Vagrant lab (Vagrantfile, vagrant/provision.sh, vagrant/vxswarm.service), checked here.

No VM can boot on this box, so this tests every part that does not need one:
- Vagrant itself loads and validates the Vagrantfile, and reports (through its own Ruby
  API) the machines, addresses, synced folder and provisioner arguments it would use:
  they must be the one-box lab's nodes, in the lab's order.
- systemd verifies the unit exactly as provision.sh renders it.
- provision.sh refuses bad input before touching anything, and its render-only mode
  (--root) writes the node's files once and then reports them unchanged.
- End to end on a real lab underlay (namespaces, no VMs), each node also given a stand-in
  for a VM's NAT NIC (10.0.2.15 with the default route, as on every VirtualBox VM): each
  node's daemon is started from the rendered unit's ExecStart, expanded with the rendered
  EnvironmentFile and the environment systemd gives a service, inside the node's
  namespace. Then provision.sh's swarm step runs in each node namespace: a worker with
  no token stops and says where one comes from; one whose manager has no swarm yet
  waits, then says what it waited for; manager1 inits; the workers join with the token
  the user fetched from manager1 (nothing on the network hands tokens out: 2377 is
  mutual TLS). A second provisioning changes nothing.

Not tested (needs VMs): booting the box, the install step in a fresh VM (bootstrap.sh
itself is what CI runs), systemctl enabling/starting the unit, the group membership,
the rsync synced folder and the provider's host-only network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netagent.contract.errors import NotFound
from netagent.lab import nodes, underlay
from netagent.lab import verbs as lab_core
from netagent.lab.driver import wait_for
from netagent.lab.record import ProcessRecord
from netagent.lab.topology import LabNode, Topology
from netagent.lab.vms import guest
from netagent.lab.vms.plan import RSYNC_EXCLUDE, VmLab
from netagent.tasks import spawn

REPO = Path(__file__).resolve().parents[2]
VAGRANTFILE = REPO / "Vagrantfile"
PROVISION = REPO / "vagrant" / "provision.sh"
BUILD_BOX = REPO / "scripts" / "build-box.sh"
UNIT = REPO / "vagrant" / "vxswarm.service"
#: The unit names the CLI where bootstrap links it; rendering points it at --cli.
UNIT_CLI = "/usr/local/bin/vxswarm"
CLI = Path(sys.executable).parent / "vxswarm"
#: What systemd gives a service's PATH; the daemon must need nothing else from our shell.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NODE_NAMES = ("manager1", "worker1", "worker2")
PROVISION_IN_VM = "/vagrant/vagrant/provision.sh"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="builds namespaces: needs root")


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def provision_args(topo: Topology, node: LabNode) -> list[str]:
    """The arguments the Vagrantfile must give provision.sh for `node` of the lab."""
    return [
        "--name",
        node.name,
        "--addr",
        str(node.ip),
        "--role",
        str(node.role),
        "--manager",
        str(topo.first_manager.ip),
    ]


def provision(*args: str, netns: str | None = None, timeout: float = 120, token: str = "") -> Any:
    """Run provision.sh (inside `netns` if given) with only a service's PATH in its env,
    and the join token the Vagrantfile would pass (VXSWARM_JOIN_TOKEN) if any."""
    enter = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    env = {"PATH": SERVICE_PATH, **({"VXSWARM_JOIN_TOKEN": token} if token else {})}
    return run([*enter, "bash", str(PROVISION), *args], env, timeout)


def example_args(root: Path) -> list[str]:
    return [
        "--name",
        "worker1",
        "--addr",
        "192.168.56.12",
        "--role",
        "worker",
        "--manager",
        "192.168.56.11",
        "--root",
        str(root),
        "--cli",
        str(CLI),
    ]


# --- scripts ---------------------------------------------------------------------------------


#: Every shell script of the VM path: provisioning, the box build, the box's boot-time seed.
SCRIPTS = (PROVISION, BUILD_BOX, REPO / "vagrant" / "box" / "vxswarm-seed")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_vm_scripts_parse_with_bash_n(script):
    done = run(["bash", "-n", str(script)])
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_vm_scripts_are_shellcheck_clean(script):
    done = run(["shellcheck", str(script)])
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--bogus"], "unknown argument '--bogus': expected --out DIR or --force"),
        (["--out"], "option --out needs a value: expected a directory"),
    ],
)
def test_build_box_refuses_bad_arguments_with_one_line_before_anything(tmp_path, args, complaint):
    done = run(
        ["bash", str(BUILD_BOX), *args], {**os.environ, "VXSWARM_BOX_DIR": str(tmp_path / "box")}
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"build-box: {complaint}"
    assert not (tmp_path / "box").exists()


# --- Vagrantfile ------------------------------------------------------------------------------


@pytest.fixture
def vagrant_env(tmp_path: Path) -> dict[str, str]:
    """Vagrant's environment with its home and the machines' state dir in tmp_path, so no
    run writes ~/.vagrant.d or <repo>/.vagrant."""
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (bash scripts/bootstrap.sh install installs it)")
    return {
        **os.environ,
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot-vagrant"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }


def vagrant_validate(vagrant_dir: Path, env: dict[str, str]) -> Any:
    # --ignore-provider: no VirtualBox or libvirt here; the machines' own config is checked.
    return run(
        ["vagrant", "validate", "--ignore-provider"], {**env, "VAGRANT_CWD": str(vagrant_dir)}
    )


def test_vagrant_validates_the_vagrantfile(vagrant_env):
    done = vagrant_validate(REPO, vagrant_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully." in done.stdout


@pytest.mark.parametrize(
    ("typo", "fixed", "complaint"),
    [
        ('"private_network"', '"private_netwrok"', "Network type 'private_netwrok' is invalid"),
        (
            "machine.vm.hostname = node[:name]",
            'machine.vm.hostname = "worker_1"',
            "should only contain letters",
        ),
        ("inline: ", "inlin: ", "The following settings shouldn't exist: inlin"),
    ],
)
def test_vagrant_validate_catches_a_broken_copy(vagrant_env, tmp_path, typo, fixed, complaint):
    text = VAGRANTFILE.read_text()
    assert typo in text
    (tmp_path / "Vagrantfile").write_text(text.replace(typo, fixed, 1))
    done = vagrant_validate(tmp_path, vagrant_env)
    assert done.returncode != 0
    assert complaint in done.stderr


#: Loads the Vagrantfile with Vagrant's own library and prints what each machine would get.
_DUMP_MACHINES = r"""
require "vagrant"
require "json"
env = Vagrant::Environment.new(cwd: ARGV[0])
puts JSON.generate(env.machine_names.map { |name|
  vm = env.vagrantfile.machine_config(name, nil, env.boxes)[:config].vm
  {
    name: name, box: vm.box, hostname: vm.hostname,
    primary: env.primary_machine_name == name,
    private_ips: vm.networks.select { |type, _| type == :private_network }.map { |_, o| o[:ip] },
    synced: vm.synced_folders.values.reject { |o| o[:disabled] }.map { |o|
      { hostpath: o[:hostpath], guestpath: o[:guestpath], type: o[:type].to_s,
        exclude: o[:rsync__exclude] } },
    provisioners: vm.provisioners.map { |p|
      { name: p.name.to_s, type: p.type.to_s, inline: p.config.inline, args: p.config.args,
        privileged: p.config.privileged } },
  }
})
"""


def test_vagrant_machines_are_the_lab_nodes_in_order(vagrant_env):
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed")
    done = run(["ruby", "-e", _DUMP_MACHINES, str(REPO)], vagrant_env)
    assert done.returncode == 0, done.stderr
    machines = json.loads(done.stdout)
    topo = Topology.build("lab", len(NODE_NAMES), 1, Path("/unused"))

    assert [m["name"] for m in machines] == [n.name for n in topo.nodes] == list(NODE_NAMES)
    for machine, node in zip(machines, topo.nodes, strict=True):
        assert machine["box"] == "debian/bookworm64"
        assert machine["hostname"] == node.name
        assert machine["primary"] == (node is topo.first_manager)
        assert machine["private_ips"] == [str(node.ip)]
        (synced,) = machine["synced"]
        assert (synced["hostpath"], synced["guestpath"], synced["type"]) == (
            ".",
            "/vagrant",
            "rsync",
        )
        # The host's venv must not land in the VM (it would shadow the VM's own build).
        assert ".venv/" in synced["exclude"]
        (prov,) = machine["provisioners"]
        assert (prov["type"], prov["privileged"]) == ("shell", True)
        assert prov["inline"] == 'exec bash /vagrant/vagrant/provision.sh "$@"'
        assert prov["args"] == provision_args(topo, node)


def test_the_vm_lab_boots_what_the_vagrantfile_describes(vagrant_env):
    """`vxswarm lab vms` (netagent.lab.vms) must boot the Vagrantfile's machines, with its
    addresses, roles, synced-folder excludes and provisioner arguments, and the offline
    box when VXSWARM_BOX names it."""
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed")
    lab = VmLab("lab", Path("/unused"))
    done = run(
        ["ruby", "-e", _DUMP_MACHINES, str(REPO)],
        {**vagrant_env, "VXSWARM_BOX": "vxswarm/bookworm64"},
    )
    assert done.returncode == 0, done.stderr
    machines = json.loads(done.stdout)
    assert [m["name"] for m in machines] == [n.name for n in lab.nodes]
    for machine, node in zip(machines, lab.nodes, strict=True):
        assert machine["box"] == "vxswarm/bookworm64"
        assert machine["private_ips"] == [str(node.ip)]
        (synced,) = machine["synced"]
        assert tuple(synced["exclude"]) == RSYNC_EXCLUDE
        (prov,) = machine["provisioners"]
        remote = shlex.split(shlex.split(guest.provision_argv(lab, node)[-1])[2])
        assert remote[remote.index("bash") + 1 :] == [PROVISION_IN_VM, *prov["args"]]


# --- unit and render-only mode ----------------------------------------------------------------


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    done = provision(*example_args(tmp_path), "service")
    assert done.returncode == 0, done.stderr
    rendered = tmp_path / "etc/systemd/system/vxswarm.service"
    source = UNIT.read_text()
    # Only the CLI path differs from the unit a VM gets, so what is verified is that unit.
    assert rendered.read_text() == source.replace(f"ExecStart={UNIT_CLI} ", f"ExecStart={CLI} ")
    assert rendered.read_text() != source

    verify = run(["systemd-analyze", "verify", str(rendered)])
    assert verify.returncode == 0, verify.stderr
    # Unknown keys and bad values are only warnings to systemd: there must be none.
    assert verify.stderr.strip() == ""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("--addr", "192.168.56.256"), "invalid --addr '192.168.56.256'"),
        (("--name", "Worker_1"), "invalid --name 'Worker_1'"),
        (("--role", "leader"), "invalid --role 'leader': expected manager or worker"),
        (("--manager", "manager1"), "invalid --manager 'manager1'"),
        (("--cli", "bin/vxswarm"), "invalid --cli 'bin/vxswarm'"),
        (("--timeout", "soon"), "invalid --timeout 'soon'"),
        (("--addr", "192.168.56.11"), "invalid --role 'worker' for the node at --manager"),
        (("up",), "unknown argument 'up'"),
    ],
)
def test_provision_refuses_bad_input_with_one_line_and_touches_nothing(tmp_path, change, named):
    args = example_args(tmp_path)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args.extend(change)
    done = provision(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert named in line and "expected" in line
    assert list(tmp_path.iterdir()) == []


def test_render_only_writes_the_node_files_once_and_prints_the_system_changes(tmp_path):
    first = provision(*example_args(tmp_path), "install", "service")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("provision worker1: wrote ") == 3
    would_run = [
        ln.split(": would run: ")[1] for ln in first.stdout.splitlines() if ": would run: " in ln
    ]
    assert would_run == [
        f"env VXSWARM_VENV=/opt/vxswarm/venv VXSWARM_BIN_LINK={CLI} "
        f"bash {REPO}/scripts/bootstrap.sh node",
        "groupadd --system vxswarm",
        "usermod --append --groups vxswarm vagrant",
        "modprobe -a br_netfilter vxlan",
        "systemctl daemon-reload",
        "systemctl enable --now vxswarm.service",
    ]
    assert (tmp_path / "etc/default/vxswarm").read_text().splitlines()[2:] == [
        "VXSWARM_HOSTNAME=worker1",
        "VXSWARM_LISTEN_ADDR=192.168.56.12",
        "VXSWARM_STATE_DIR=/var/lib/vxswarm",
        "VXSWARM_NS_PREFIX=vx",
        "VXSWARM_RESOLV_CONF=/etc/resolv.conf",
    ]
    assert (tmp_path / "etc/modules-load.d/vxswarm.conf").read_text() == "br_netfilter\nvxlan\n"
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    again = provision(*example_args(tmp_path), "service")
    assert again.returncode == 0, again.stderr
    assert "wrote " not in again.stdout
    assert again.stdout.count("provision worker1: unchanged ") == 3
    assert "daemon-reload" not in again.stdout  # nothing changed, nothing to reload
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


# --- end to end on a lab underlay -------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile (provision.sh writes no quotes or spaces)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert re.fullmatch(r"[A-Z_]+", key) and re.fullmatch(r"[^\s'\"\\$%]*", value), line
            env[key] = value
    return env


def exec_start_argv(unit: str, env: dict[str, str]) -> list[str]:
    """The unit's ExecStart as systemd runs it, for the syntax vxswarm.service uses:
    backslash continuations and ${VAR}; any other syntax fails here rather than being
    run differently from systemd."""
    joined = re.sub(r"\\\n[ \t]*", " ", unit)
    (line,) = [ln for ln in joined.splitlines() if ln.startswith("ExecStart=")]
    command = line.removeprefix("ExecStart=")
    assert not re.search(r"%|\$(?!\{)|^[-@:+!]", command), f"unsupported syntax: {command}"
    return [
        re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word) for word in shlex.split(command)
    ]


class UnitLab:
    """A lab underlay (no lab daemons) whose node daemons run from the rendered unit."""

    def __init__(self) -> None:
        self.name = f"vg{secrets.token_hex(2)}"
        self.root = Path(tempfile.mkdtemp(prefix="vxvag-"))
        self.topo = Topology.build(self.name, len(NODE_NAMES), 1, self.root)
        self.daemons: dict[str, ProcessRecord] = {}

    def node(self, name: str) -> LabNode:
        return self.topo.node(name)

    def sysroot(self, node: LabNode) -> Path:
        return self.root / "sysroot" / node.name

    def args(self, node: LabNode) -> list[str]:
        """Vagrant's arguments for the node, plus where this lab keeps its state."""
        return [
            *provision_args(self.topo, node),
            "--root",
            str(self.sysroot(node)),
            "--state-dir",
            str(node.state_dir),
            "--ns-prefix",
            node.netns,
            "--resolv-conf",
            str(node.state_dir / "resolv.conf"),
            "--cli",
            str(CLI),
            "--timeout",
            "60",
        ]

    def provision(self, node: LabNode, *steps: str, token: str = "") -> Any:
        return provision(*self.args(node), *steps, netns=node.netns, token=token)

    def start_daemon(self, node: LabNode) -> None:
        """Do what systemd would: EnvironmentFile + ExecStart, a service's PATH, in the node."""
        sysroot = self.sysroot(node)
        env = read_env_file(sysroot / "etc/default/vxswarm")
        argv = exec_start_argv((sysroot / "etc/systemd/system/vxswarm.service").read_text(), env)
        node.state_dir.mkdir(parents=True, exist_ok=True)
        with node.log.open("ab") as out:
            child = subprocess.Popen(
                ["nsenter", f"--net={node.netns_path}", *argv],
                env={"PATH": SERVICE_PATH, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        started = spawn.start_time(child.pid)
        assert started is not None, f"daemon of {node.name} exited at once: {nodes.log_tail(node)}"
        self.daemons[node.name] = ProcessRecord(pid=child.pid, start_time=started)
        nodes.wait_ready(node, self.daemons[node.name])

    def cli(self, node: LabNode, *args: str) -> Any:
        env = {"PATH": SERVICE_PATH, "VXSWARM_HOST": node.host_url}
        done = run([str(CLI), *args, "--format", "json"], env, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def listening(self, node: LabNode) -> set[str]:
        """The TCP addresses the node's daemon listens on (2377 and the view port)."""
        done = run(["nsenter", f"--net={node.netns_path}", "ss", "-Hltn"])
        return {line.split()[3] for line in done.stdout.splitlines()}

    def down(self) -> None:
        """Daemons by recorded pid, then the lab's own teardown, then anything it missed."""
        try:
            nodes.stop_all(list(self.daemons.values()), graceful=True)
            # Wipes what each daemon recorded in its state dir, then the underlay.
            with contextlib.suppress(NotFound):  # `lab up` failed before its record
                lab_core.down(self.name, root=self.root)
        finally:
            for rec in self.daemons.values():
                nodes.stop(rec, graceful=False)
            for ns in self.topo.all_netns:
                underlay.remove_netns(ns)
            shutil.rmtree(self.root, ignore_errors=True)


#: A VM's NAT interface: the same address on every VM, and the default route.
NAT_ADDR, NAT_GATEWAY = "10.0.2.15/24", "10.0.2.2"


def add_nat_nic(node: LabNode) -> None:
    """Give the node a stand-in for a VM's NAT NIC, so an init that did not name the private
    address would advertise 10.0.2.15 here too. A veth pair with both ends in the node's
    namespace (this kernel has no dummy links): up, with a carrier, leading nowhere."""
    for cmd in (
        ["link", "add", "nat0", "type", "veth", "peer", "name", "nat0-wire"],
        ["addr", "add", NAT_ADDR, "dev", "nat0"],
        ["link", "set", "nat0-wire", "up"],
        ["link", "set", "nat0", "up"],
        ["route", "add", "default", "via", NAT_GATEWAY, "dev", "nat0"],
    ):
        done = run(["ip", "-n", node.netns, *cmd])
        assert done.returncode == 0, done.stderr


@pytest.fixture
def unit_lab() -> Iterator[UnitLab]:
    made = UnitLab()
    try:
        lab_core.up(made.name, len(NODE_NAMES), 1, daemons=False, root=made.root)
        for node in made.topo.nodes:
            add_nat_nic(node)
        yield made
    finally:
        made.down()


@pytest.mark.root
@pytest.mark.lab
@needs_root
def test_provisioned_unit_daemons_form_the_swarm_and_a_second_provisioning_changes_nothing(
    unit_lab,
):
    manager1, worker1, worker2 = (unit_lab.node(n) for n in NODE_NAMES)
    for node in (manager1, worker1, worker2):
        rendered = unit_lab.provision(node, "service")
        assert rendered.returncode == 0, rendered.stderr
        unit_lab.start_daemon(node)
        # The daemon listens on the private address only, as the unit's settings say.
        assert unit_lab.listening(node) == {f"{node.ip}:2377", f"{node.ip}:9323"}

    # A worker without a token stops at once and says where the token comes from.
    no_token = unit_lab.provision(worker2, "swarm")
    assert no_token.returncode == 1
    assert "no join token for worker2: set VXSWARM_JOIN_TOKEN" in no_token.stderr
    assert "vagrant ssh manager1 -c 'vxswarm swarm join-token -q worker'" in no_token.stderr

    # No swarm yet: a worker that may not wait says what it waited for and what it got.
    args = unit_lab.args(worker2)
    args[args.index("--timeout") + 1] = "1"
    fake = "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25
    impatient = provision(*args, "swarm", netns=worker2.netns, token=fake)
    assert impatient.returncode == 1
    assert (
        "timed out after 1s waiting for the manager at 192.168.56.11:2377 to admit worker2 as "
        "a worker; last error: Error: "
    ) in impatient.stderr

    init = unit_lab.provision(manager1, "swarm")
    assert init.returncode == 0, init.stderr
    assert "Swarm initialized" in init.stdout
    # What the user does on the host: ask manager1 (its socket, as `vagrant ssh` would).
    token = run(
        [str(CLI), "swarm", "join-token", "-q", "worker"],
        {"PATH": SERVICE_PATH, "VXSWARM_HOST": manager1.host_url},
    ).stdout.strip()
    for worker in (worker1, worker2):
        joined = unit_lab.provision(worker, "swarm", token=token)
        assert joined.returncode == 0, joined.stderr
        assert (
            f"joined the swarm of 192.168.56.11:2377 as a worker, advertising {worker.ip}"
            in joined.stdout
        )

    expected = {
        n.name: ("manager" if n is manager1 else "worker", str(n.ip)) for n in unit_lab.topo.nodes
    }
    ready = wait_for(
        "3 Ready nodes",
        lambda: (
            (ls := unit_lab.cli(manager1, "node", "ls"))
            and all(n["status"] == "ready" for n in ls)
            and len(ls) == 3
            and ls
        ),
        timeout=45,
    )
    assert {n["hostname"]: (n["role"], n["addr"]) for n in ready} == expected
    ids = sorted(n["id"] for n in ready)

    # `vagrant provision` again: every node finds its files and its membership as they are.
    for node in (manager1, worker1, worker2):
        again = unit_lab.provision(node, "service", "swarm")
        assert again.returncode == 0, again.stderr
        assert "wrote " not in again.stdout
        assert "already in the swarm" in again.stdout and "nothing to do" in again.stdout
    assert sorted(n["id"] for n in unit_lab.cli(manager1, "node", "ls")) == ids

    # A node in the swarm under other settings is left alone, with the way out named.
    moved = provision(
        *[a if a != str(worker2.ip) else "192.168.56.99" for a in unit_lab.args(worker2)],
        "swarm",
        netns=worker2.netns,
    )
    assert moved.returncode == 1
    assert "is in a swarm as a worker with address 192.168.56.13" in moved.stderr
    assert "expected a worker with address 192.168.56.99" in moved.stderr
    assert "swarm leave" in moved.stderr
