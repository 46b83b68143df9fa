"""The agent's side of a task's mounts: checks, volume directories, the shim's memfd."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from netagent.contract.desired import Mount, TaskFile, TaskSpec
from netagent.contract.errors import InvalidArgument
from netagent.tasks import filesystem


def test_a_missing_bind_source_is_refused_with_dockers_message(tmp_path):
    spec = TaskSpec(image="x", mounts=(Mount(type="bind", source=f"{tmp_path}/no", target="/d"),))
    with pytest.raises(InvalidArgument) as err:
        filesystem.check(spec)
    assert str(err.value) == (
        f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/no'
    )


def test_a_volume_name_that_is_a_path_is_refused():
    spec = TaskSpec(image="x", mounts=(Mount(type="volume", source="../etc", target="/d"),))
    with pytest.raises(InvalidArgument, match="invalid volume name '../etc'"):
        filesystem.check(spec)


def test_nothing_to_mount_needs_no_setup(tmp_path):
    assert filesystem.setup_fd(TaskSpec(image="x"), tmp_path) is None
    assert not (tmp_path / filesystem.STAGE).exists()


def test_the_setup_travels_in_a_memfd_with_volumes_resolved(tmp_path):
    secret = base64.b64encode(b"s3cret").decode()
    spec = TaskSpec(
        image="x",
        mounts=(Mount(type="volume", source="data", target="/d"),
                Mount(type="tmpfs", target="/t", tmpfs_size=4096)),
        files=(TaskFile(kind="secret", id="1", name="pw", target="/run/secrets/pw",
                        data=secret),),
    )  # fmt: skip
    fd = filesystem.setup_fd(spec, tmp_path)
    assert fd is not None
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:")  # not a disk file
        doc = json.loads(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    volume = tmp_path / "volumes" / "data"
    assert doc["stage"] == str(tmp_path / filesystem.STAGE)
    assert [m["source"] for m in doc["mounts"]] == [str(volume), ""]
    assert doc["files"][0]["data"] == secret
    assert stat.S_IMODE((tmp_path / "volumes").stat().st_mode) == 0o700
    assert stat.S_IMODE(volume.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / filesystem.STAGE).stat().st_mode) == 0o700
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written to disk
