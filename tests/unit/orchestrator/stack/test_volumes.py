"""Compose `volumes:` → a service's mounts, as `docker stack deploy` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert
from orchestrator.stack.volumes import anchor_paths


def mounts_of(service: dict, volumes: dict | None = None, stack: str = "shop") -> list[dict]:
    raw: dict = {"services": {"web": {"image": "whoami", **service}}}
    if volumes is not None:
        raw["volumes"] = volumes
    compose, _ = parse(raw)
    (spec,) = convert(compose, stack, {}).services
    return spec["mounts"]


def _short(mount: dict) -> tuple:
    return (mount["type"], mount["source"], mount["target"], mount["readonly"])


def test_short_syntax_named_volumes_and_binds():
    got = mounts_of(
        {"volumes": ["data:/var/lib/data", "/srv/site:/www:ro", "logs:/logs:rw,nocopy"]},
        {"data": None, "logs": {}},
    )
    assert [_short(m) for m in got] == [
        ("volume", "shop_data", "/var/lib/data", False),
        ("bind", "/srv/site", "/www", True),
        ("volume", "shop_logs", "/logs", False),
    ]


def test_long_syntax_with_tmpfs_size_and_mode():
    got = mounts_of(
        {
            "volumes": [
                {"type": "tmpfs", "target": "/cache", "tmpfs": {"size": "64m", "mode": 0o1770}},
                {"type": "tmpfs", "target": "/t", "tmpfs": {"size": 4096}},
                {"type": "bind", "source": "/srv", "target": "/srv", "read_only": True,
                 "bind": {"create_host_path": True}},
                {"type": "volume", "source": "data", "target": "/d", "volume": {"nocopy": True}},
            ]
        },
        {"data": {}},
    )  # fmt: skip
    assert (got[0]["tmpfs_size"], got[0]["tmpfs_mode"]) == (64 << 20, 0o1770)
    assert got[1]["tmpfs_size"] == 4096
    assert _short(got[2]) == ("bind", "/srv", "/srv", True)
    assert _short(got[3]) == ("volume", "shop_data", "/d", False)


def test_external_and_named_volumes_keep_their_own_names():
    got = mounts_of(
        {"volumes": ["ext:/a", "own:/b"]},
        {"ext": {"external": True}, "own": {"name": "shared-b"}},
    )
    assert [m["source"] for m in got] == ["ext", "shared-b"]


@pytest.mark.parametrize(
    ("service", "volumes", "message"),
    [
        ({"volumes": ["data:/d"]}, {},
         "services.web.volumes: undefined volume 'data': expected a key of the top-level "
         "volumes (declared: none)"),
        ({"volumes": ["/only-a-target"]}, None,
         "services.web.volumes.0: invalid volume '/only-a-target': expected "
         "SOURCE:TARGET[:MODE] (a named volume or a node path; anonymous volumes are not "
         "supported)"),
        ({"volumes": ["data:/d:z"]}, {"data": {}},
         "services.web.volumes.0: invalid mode 'z' in volume 'data:/d:z': expected ro, rw "
         "or nocopy"),
        ({"volumes": [{"type": "tmpfs", "source": "x", "target": "/t"}]}, None,
         "services.web.volumes.0: a tmpfs takes no source, got 'x'"),
        ({"volumes": [{"type": "bind", "source": "/a", "target": "/t", "tmpfs": {"size": 1}}]},
         None, "services.web.volumes.0: cannot mix 'tmpfs' options with type 'bind'"),
        ({"volumes": ["/a:relative"]}, None,
         "services.web.volumes: invalid mount target, must be an absolute path: relative"),
        ({"volumes": ["data:/d"]}, {"data": {"driver": "nfs"}},
         "volumes.data.driver: expected 'local', got 'nfs'"),
        ({"volumes": ["data:/d"]}, {"data": {"driver_opts": {"type": "nfs"}}},
         "volumes.data.driver_opts: unknown key"),
    ],
)  # fmt: skip
def test_bad_volumes_are_refused_naming_the_compose_path(service, volumes, message):
    with pytest.raises(InvalidArgument) as err:
        mounts_of(service, volumes)
    assert str(err.value).startswith(message)


def test_relative_and_home_bind_sources_are_anchored_to_the_compose_files_directory(tmp_path):
    raw = {
        "services": {
            "web": {
                "image": "whoami",
                "volumes": ["./site:/www", "~/x:/x:ro", "data:/d", "/abs:/abs",
                            {"type": "bind", "source": "../up", "target": "/up"}],
            }
        }
    }  # fmt: skip
    got = anchor_paths(raw, tmp_path / "proj")["services"]["web"]["volumes"]
    assert got == [
        f"{tmp_path}/proj/site:/www",
        f"{Path.home()}/x:/x:ro",
        "data:/d",
        "/abs:/abs",
        {"type": "bind", "source": f"{tmp_path}/up", "target": "/up"},
    ]
