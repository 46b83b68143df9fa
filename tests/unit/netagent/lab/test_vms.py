"""The VM lab's pure parts: names, MACs, the seed, QEMU's and SSH's command lines, the record.

What the VMs do is tested by tests/vms (opt-in: it boots them); that the plan is the
Vagrantfile's is tested with Vagrant's own library in tests/integration/test_vagrant.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from netagent.contract.errors import InvalidArgument, NotFound
from netagent.lab.record import ProcessRecord
from netagent.lab.vms import guest, qemu, record
from netagent.lab.vms.plan import VAGRANT_NODES, VmLab, render_seed

ROOT = Path("/var/lib/vxswarm/labs")


def test_names_and_paths_of_a_vm_lab():
    lab = VmLab("v1", ROOT)
    assert lab.netns == "vxvm-v1"
    assert lab.dir == ROOT / "vms" / "v1"
    assert [n.name for n in lab.nodes] == ["manager1", "worker1", "worker2"]
    assert lab.manager.name == "manager1"
    assert lab.disk(lab.manager) == ROOT / "vms" / "v1" / "manager1" / "disk.qcow2"
    assert all(len(n.tap) <= 15 for n in lab.nodes)
    assert str(lab.client_address) == "192.168.56.1/24"


def test_a_bad_lab_name_or_node_is_refused_by_name():
    with pytest.raises(InvalidArgument, match="'Bad_Name'"):
        VmLab("Bad_Name", ROOT)
    with pytest.raises(NotFound, match="no VM 'worker9'.*manager1, worker1, worker2"):
        VmLab("v1", ROOT).node("worker9")


def test_macs_differ_between_nodes_nics_and_labs_and_are_stable():
    macs = [mac for lab in ("a", "b") for node in VAGRANT_NODES for mac in node.macs(lab)]
    assert len(set(macs)) == len(macs)
    assert VAGRANT_NODES[0].macs("a") == VAGRANT_NODES[0].macs("a")
    for mac in macs:
        assert mac.startswith("52:54:00:")
        assert int(mac.split(":")[0], 16) & 1 == 0  # unicast


def test_the_seed_names_the_node_its_address_and_the_key():
    seed = render_seed(VAGRANT_NODES[1], "ssh-ed25519 AAAA vxswarm\n")
    assert seed.splitlines() == [
        "VXSWARM_HOSTNAME=worker1",
        "VXSWARM_ADDR=192.168.56.12/24",
        "VXSWARM_SSH_KEY=ssh-ed25519 AAAA vxswarm",
    ]
    with pytest.raises(ValueError):
        render_seed(VAGRANT_NODES[1], "key one\nkey two")


def test_qemu_runs_emulated_with_its_tap_fd_seed_and_macs():
    lab = VmLab("v1", ROOT)
    node = lab.node("worker2")
    argv = qemu.qemu_argv(lab, node, memory_mb=1024, cpus=1, tap_fd=7)
    line = shlex.join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-enable-kvm" not in argv and "kvm" not in line  # the paravirtual /dev/kvm hangs
    assert "tcg,thread=multi,tb-size=" in line
    assert "tap,id=hostonly,fd=7" in argv
    assert f"name=opt/org.vxswarm/seed,file={lab.seed(node)}" in argv
    nat_mac, lab_mac = node.macs("v1")
    assert f"virtio-net-pci,netdev=nat,mac={nat_mac}" in argv
    assert f"virtio-net-pci,netdev=hostonly,mac={lab_mac}" in argv
    assert argv[argv.index("-m") + 1] == "1024"
    assert "-daemonize" in argv and str(lab.pidfile(node)) in argv


def test_ssh_goes_from_the_client_namespace_with_the_labs_key_only():
    lab = VmLab("v1", ROOT)
    argv = guest.ssh_argv(lab, lab.manager, "vxswarm node ls")
    assert argv[:2] == ["nsenter", "--net=/run/netns/vxvm-v1"]
    assert argv[-2:] == ["vagrant@192.168.56.11", "vxswarm node ls"]
    assert f"UserKnownHostsFile={lab.known_hosts}" in argv
    assert "IdentitiesOnly=yes" in argv and str(lab.key) in argv
    assert "-t" in guest.ssh_argv(lab, lab.manager, None, tty=True)
    assert guest.client_argv(lab, "curl -s 192.168.56.12:8080")[-3:] == [
        "bash",
        "-c",
        "curl -s 192.168.56.12:8080",
    ]


def test_provisioning_runs_the_vagrantfiles_arguments_and_keeps_the_token_out_of_argv():
    lab = VmLab("v1", ROOT)
    argv = guest.provision_argv(lab, lab.node("worker1"))
    remote = shlex.split(argv[-1])
    assert remote[:2] == ["sh", "-c"]
    script = remote[2]
    assert "read -r VXSWARM_JOIN_TOKEN" in script
    assert "--preserve-env=VXSWARM_JOIN_TOKEN" in script
    assert script.endswith(
        "bash /vagrant/vagrant/provision.sh --name worker1 --addr 192.168.56.12 "
        "--role worker --manager 192.168.56.11"
    )
    assert "SWMTKN" not in " ".join(argv)


def test_the_record_round_trips_and_a_missing_one_is_named(tmp_path):
    lab = VmLab("v1", tmp_path)
    with pytest.raises(NotFound, match="no VM lab 'v1'"):
        record.load(lab)
    rec = record.VmLabRecord(name="v1", box="/box.qcow2", memory_mb=1024, cpus=1)
    rec.vm("manager1").qemu = ProcessRecord(pid=42, start_time=7)
    record.save(lab, rec)
    assert (lab.dir.stat().st_mode & 0o777) == 0o700
    again = record.load(lab)
    assert again.vm("manager1").qemu == ProcessRecord(pid=42, start_time=7)
    assert record.list_labs(tmp_path) == ["v1"]
    assert record.resolve_name(None, tmp_path, "lab") == "v1"
