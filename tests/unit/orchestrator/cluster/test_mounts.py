"""A service's mounts are checked before they are stored; a change rolls its tasks."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from orchestrator.cluster.mounts import ram_bytes
from orchestrator.cluster.objects import Service, ServiceSpec


def spec(*mounts: dict) -> ServiceSpec:
    return ServiceSpec(name="web", image="whoami", mounts=list(mounts))


def test_good_mounts_are_kept():
    s = spec(
        {"type": "bind", "source": "/srv", "target": "/www", "readonly": True},
        {"type": "volume", "source": "db-data_1", "target": "/data"},
        {"type": "tmpfs", "target": "/cache", "tmpfs_size": 1024, "tmpfs_mode": 0o1777},
    )
    assert [m.type for m in s.mounts] == ["bind", "volume", "tmpfs"]


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"type": "bind", "source": "/srv", "target": "www"},
         "invalid mount target, must be an absolute path: www"),
        ({"type": "tmpfs", "target": "/"},
         "invalid mount target: / (a task keeps the node's root)"),
        ({"type": "bind", "source": "srv", "target": "/www"},
         "invalid bind mount source, must be an absolute path: srv"),
        ({"type": "volume", "source": "-bad", "target": "/d"},
         "invalid volume name '-bad': expected [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
        ({"type": "volume", "source": "a/b", "target": "/d"}, "invalid volume name 'a/b'"),
        ({"type": "tmpfs", "source": "x", "target": "/d"},
         "invalid tmpfs source 'x': a tmpfs takes no source"),
        ({"type": "bind", "source": "/a", "target": "/d", "tmpfs_size": 5},
         "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    ],
)  # fmt: skip
def test_bad_mounts_are_refused_naming_the_value(mount, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        spec(mount)


def test_two_mounts_on_one_target_are_refused():
    with pytest.raises(ValidationError, match="duplicate mount point: /d/"):
        spec({"type": "tmpfs", "target": "/d"}, {"type": "volume", "source": "v1", "target": "/d/"})


def test_mounts_change_the_task_key_and_no_mounts_keep_the_old_one():
    plain = Service(id="s1", spec=spec())
    before = Service(id="s1", spec=ServiceSpec(name="web", image="whoami"))
    assert plain.task_key() == before.task_key()
    mounted = Service(id="s1", spec=spec({"type": "tmpfs", "target": "/t"}))
    readonly = Service(id="s1", spec=spec({"type": "tmpfs", "target": "/t", "readonly": True}))
    assert len({plain.task_key(), mounted.task_key(), readonly.task_key()}) == 3


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("64k", 64 << 10), ("64m", 64 << 20), ("1g", 1 << 30), ("1.5m", 3 << 19),
     ("10MB", 10 << 20), ("2Gi", 2 << 30)],
)  # fmt: skip
def test_sizes_read_as_docker_reads_them(text, size):
    assert ram_bytes(text) == size


def test_a_bad_size_names_it():
    with pytest.raises(ValueError, match="invalid size 'big': expected bytes"):
        ram_bytes("big")
