"""Which cgroup hierarchies a task gets (v1 or v2), the limit files, and ownership."""

from pathlib import Path

from netagent.contract.desired import Resources
from netagent.tasks.cgroups import Hierarchy, detect, limit_files, owned

HYBRID_MOUNTS = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
HYBRID_OWN = """5:memory:/user.slice/vxswarm
4:cpu,cpuacct:/
3:pids:/
0::/user.slice
"""


def test_v1_controllers_win_on_a_hybrid_system_and_nest_under_the_daemons_cgroup():
    layout = detect(HYBRID_MOUNTS, HYBRID_OWN)
    assert layout.version == 1
    assert layout.hierarchies == (
        Hierarchy(1, Path("/sys/fs/cgroup/memory/user.slice/vxswarm"), "memory"),
        Hierarchy(1, Path("/sys/fs/cgroup/cpu,cpuacct"), "cpu"),
    )
    assert layout.task_dirs("vx-lab-w1-tasks", "web.1-abc") == [
        "/sys/fs/cgroup/memory/user.slice/vxswarm/vx-lab-w1-tasks/web.1-abc",
        "/sys/fs/cgroup/cpu,cpuacct/vx-lab-w1-tasks/web.1-abc",
    ]


def test_v2_alone_gives_one_tree_when_it_offers_memory_and_cpu(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = detect(f"cgroup2 {tmp_path} cgroup2 rw 0 0\n", "0::/system.slice/x\n", tmp_path)
    assert layout.hierarchies == (Hierarchy(2, tmp_path),)
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    layout = detect(f"cgroup2 {tmp_path} cgroup2 rw 0 0\n", "0::/\n", tmp_path)
    assert layout.hierarchies == () and "offers no memory and cpu" in layout.missing


def test_no_cgroups_at_all_says_why():
    layout = detect("proc /proc proc rw 0 0\n", "0::/\n")
    assert layout.hierarchies == () and "no memory and cpu cgroup controllers" in layout.missing


def test_limit_files_per_version():
    limits = Resources(nano_cpus=500_000_000, memory_bytes=64 << 20)
    assert limit_files(2, "", limits) == [("memory.max", "67108864"), ("cpu.max", "50000 100000")]
    assert limit_files(1, "memory", limits) == [("memory.limit_in_bytes", "67108864")]
    assert limit_files(1, "cpu", limits) == [
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "50000"),
    ]
    assert limit_files(2, "", Resources()) == []
    assert limit_files(1, "cpu", Resources(nano_cpus=2_000_000_000))[1] == (
        "cpu.cfs_quota_us",
        "200000",
    )


def test_only_paths_in_the_nodes_own_directory_are_owned():
    assert owned("/sys/fs/cgroup/memory/x/vx-a-w1-tasks/web.1-abc", "vx-a-w1-tasks")
    assert owned("/sys/fs/cgroup/memory/x/vx-a-w1-tasks", "vx-a-w1-tasks")
    assert not owned("/sys/fs/cgroup/memory/x/vx-a-w2-tasks/web.1-abc", "vx-a-w1-tasks")
    assert not owned("/tmp/vx-a-w1-tasks/web.1-abc", "vx-a-w1-tasks")
    assert not owned("/sys/fs/cgroup/memory/vx-a-w1-tasks/../../etc", "vx-a-w1-tasks")


def test_v2_create_hands_controllers_down_and_writes_the_limits(tmp_path):
    """The v2 steps on a stand-in tree (this project's machines run v1): the top and the
    node's directory hand memory and cpu to their children, the leaf gets the limits."""
    from netagent.tasks.cgroups import Layout, create, remove, remove_node_dirs

    (tmp_path / "cgroup.subtree_control").write_text("")
    node = tmp_path / "vx-a-w1-tasks"
    node.mkdir()
    (node / "cgroup.subtree_control").write_text("")  # the kernel makes it with the dir
    layout = Layout((Hierarchy(2, tmp_path),))
    create(layout, node.name, "web.1-abc", Resources(nano_cpus=1_500_000_000, memory_bytes=1 << 30))
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (node / "cgroup.subtree_control").read_text() == "+memory +cpu"
    leaf = node / "web.1-abc"
    assert (leaf / "memory.max").read_text() == str(1 << 30)
    assert (leaf / "cpu.max").read_text() == "150000 100000"
    for f in leaf.iterdir():  # a real cgroup's files go with its rmdir
        f.unlink()
    assert remove([str(leaf)]) == [] and not leaf.exists()
    (node / "cgroup.subtree_control").unlink()
    assert remove_node_dirs([str(node)]) == [] and not node.exists()
