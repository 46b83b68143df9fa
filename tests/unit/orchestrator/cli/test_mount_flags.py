"""`--mount` in docker's syntax, and `--mount-add` / `--mount-rm` on a spec."""

from __future__ import annotations

import os

import click
import pytest

from orchestrator.cli.mount_flags import (
    MountSyntaxError,
    apply_mount_update,
    mount_lines,
    parse_mount,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("type=bind,source=/srv/www,target=/www",
         {"type": "bind", "source": "/srv/www", "target": "/www", "readonly": False}),
        ("type=bind,src=/srv/www,dst=/www,readonly",
         {"type": "bind", "source": "/srv/www", "target": "/www", "readonly": True}),
        ("type=bind,src=/a,destination=/b,ro=true",
         {"type": "bind", "source": "/a", "target": "/b", "readonly": True}),
        ("type=bind,src=/a,target=/b,readonly=false",
         {"type": "bind", "source": "/a", "target": "/b", "readonly": False}),
        # docker's default type is volume; keys are case-insensitive, as docker's.
        ("source=data,target=/data",
         {"type": "volume", "source": "data", "target": "/data", "readonly": False}),
        ("Type=volume,Source=data,Target=/data,volume-nocopy",
         {"type": "volume", "source": "data", "target": "/data", "readonly": False}),
        ("type=tmpfs,target=/cache,tmpfs-size=64m,tmpfs-mode=1770",
         {"type": "tmpfs", "source": "", "target": "/cache", "readonly": False,
          "tmpfs_size": 64 << 20, "tmpfs_mode": 0o1770}),
        ("type=tmpfs,dst=/t,tmpfs-size=1048576",
         {"type": "tmpfs", "source": "", "target": "/t", "readonly": False,
          "tmpfs_size": 1 << 20}),
        # CSV: a quoted field may hold a comma.
        ('type=bind,"source=/srv/a,b",target=/x',
         {"type": "bind", "source": "/srv/a,b", "target": "/x", "readonly": False}),
    ],
)  # fmt: skip
def test_docker_spellings_parse(value, expected):
    assert parse_mount(value) == expected


def test_a_relative_source_is_made_absolute_as_dockers_cli_does():
    got = parse_mount("type=bind,source=./site,target=/www")
    assert got["source"] == os.path.join(os.getcwd(), "site")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=bind,source=/a,target=/b,colour=red",
         "unexpected key 'colour' in 'colour=red': expected type, source|src, "
         "target|dst|destination, readonly|ro, volume-nocopy, tmpfs-size, tmpfs-mode"),
        ("type=volume,source=a,target=/b,volume-driver=nfs",
         "unsupported key 'volume-driver' in 'volume-driver=nfs': expected type, source|src, "
         "target|dst|destination, readonly|ro, volume-nocopy, tmpfs-size, tmpfs-mode"),
        ("type=bind,source=/a,target=/b,shiny", "invalid field 'shiny' must be a key=value pair"),
        ("type=bind,source=/a,target=/b,ro=maybe",
         "invalid value for ro: maybe (expected true or false)"),
        ("type=nfs,source=/a,target=/b",
         "invalid mount type 'nfs' in 'type=nfs,source=/a,target=/b': expected bind, volume "
         "or tmpfs"),
        ("type=bind,source=/a", "target is required in 'type=bind,source=/a'"),
        ("type=bind,target=/b", "source is required for a bind mount in 'type=bind,target=/b'"),
        ("type=bind,source=/a,target=/b,tmpfs-size=1m",
         "cannot mix 'tmpfs-*' options with mount type 'bind'"),
        ("type=tmpfs,target=/b,volume-nocopy",
         "cannot mix 'volume-*' options with mount type 'tmpfs'"),
        ("type=tmpfs,target=/b,tmpfs-size=lots",
         "invalid value for tmpfs-size: lots (expected bytes or a size like 64m)"),
        ("type=tmpfs,target=/b,tmpfs-mode=rwx",
         "invalid value for tmpfs-mode: rwx (expected an octal mode, e.g. 1770)"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_one_line_naming_them(value, message):
    with pytest.raises(MountSyntaxError) as err:
        parse_mount(value)
    assert str(err.value) == message and "\n" not in message


def _mount(target: str, source: str = "/src") -> dict:
    return {"type": "bind", "source": source, "target": target, "readonly": False}


def test_update_removes_by_target_then_adds_replacing_the_same_target():
    current = [_mount("/a"), _mount("/b"), _mount("/c")]
    got = apply_mount_update(
        current, ["type=bind,source=/new,target=/c", "type=tmpfs,target=/d"], ["/a"]
    )
    assert [m["target"] for m in got] == ["/b", "/c", "/d"]
    assert got[1]["source"] == "/new"


def test_update_without_mount_flags_leaves_the_mounts_alone():
    assert apply_mount_update([_mount("/a")], [], []) is None


def test_removing_a_mount_the_service_lacks_is_an_error_naming_it():
    with pytest.raises(click.BadParameter, match="the service has no mount at /nope"):
        apply_mount_update([_mount("/a")], [], ["/nope"])


def test_a_bad_mount_add_names_the_flag():
    with pytest.raises(click.BadParameter) as err:
        apply_mount_update([], ["type=bind,target=/x"], [])
    assert "--mount-add" in err.value.format_message() or err.value.param_hint == "'--mount-add'"


def test_pretty_inspect_lists_the_mounts_as_docker_does():
    assert mount_lines([]) == []
    assert mount_lines([_mount("/www", "/srv") | {"readonly": True}]) == [
        "Mounts:", " Target:\t/www", "  Source:\t/srv", "  ReadOnly:\ttrue", "  Type:\tbind",
    ]  # fmt: skip
