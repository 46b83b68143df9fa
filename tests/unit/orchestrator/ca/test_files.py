"""A node's credential files: Swarm's names, 0600 files in a 0700 directory, atomic."""

from __future__ import annotations

import os
import stat

import pytest

from netagent.contract.errors import InvalidArgument, NotFound
from orchestrator.ca import authority, node_certs, tls
from orchestrator.ca.files import Credentials, NodeCredentials


@pytest.fixture
def creds(root, issue) -> Credentials:
    key, cert = issue()
    return Credentials(authority.bundle_pem(root), cert, key)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_credentials_are_kept_under_swarms_names(tmp_path):
    files = NodeCredentials.under(tmp_path)
    assert files.root_ca_path == tmp_path / "certificates" / "swarm-root-ca.crt"
    assert files.cert_path == tmp_path / "certificates" / "swarm-node.crt"
    assert files.key_path == tmp_path / "certificates" / "swarm-node.key"


def test_files_are_written_0600_in_a_0700_directory(tmp_path, creds):
    files = NodeCredentials.under(tmp_path / "state")
    files.save(creds)
    assert _mode(files.directory) == 0o700
    for path in (files.root_ca_path, files.cert_path, files.key_path):
        assert _mode(path) == 0o600
    assert files.exists()
    assert files.load() == creds


def test_a_loose_directory_is_tightened_and_the_umask_left_alone(tmp_path, creds):
    files = NodeCredentials.under(tmp_path)
    files.directory.mkdir(mode=0o755)
    os.chmod(files.directory, 0o755)
    before = os.umask(0o022)
    try:
        files.save(creds)
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert _mode(files.directory) == 0o700
    assert _mode(files.key_path) == 0o600


def test_saving_again_replaces_the_files_and_leaves_no_temporary_file(tmp_path, creds, issue):
    files = NodeCredentials.under(tmp_path)
    files.save(creds)
    key, cert = issue("worker1-id", "worker")
    renewed = Credentials(creds.bundle_pem, cert, key)
    files.save(renewed)
    assert files.load() == renewed
    assert sorted(p.name for p in files.directory.iterdir()) == [
        "swarm-node.crt",
        "swarm-node.key",
        "swarm-root-ca.crt",
    ]


def test_a_new_bundle_alone_can_be_saved(tmp_path, creds):
    files = NodeCredentials.under(tmp_path)
    files.save(creds)
    bundle = authority.bundle_pem(
        authority.new_root("cluster1"), authority.RootCA(creds.bundle_pem)
    )
    files.save_bundle(bundle)
    assert files.load().bundle_pem == bundle
    assert _mode(files.root_ca_path) == 0o600


def test_a_key_that_is_not_the_certificates_is_refused_on_reading_back(tmp_path, creds):
    files = NodeCredentials.under(tmp_path)
    files.save(Credentials(creds.bundle_pem, creds.cert_pem, node_certs.new_key()))
    with pytest.raises(InvalidArgument, match="^node key .*swarm-node.key and certificate .*"):
        tls.shown_identity(files.cert_path, files.key_path, files.root_ca_path)


def test_missing_credentials_say_the_node_has_not_joined(tmp_path):
    with pytest.raises(NotFound, match="this node has not joined a swarm$"):
        NodeCredentials.under(tmp_path).load()
    assert not NodeCredentials.under(tmp_path).exists()


def test_remove_deletes_the_files_and_the_directory(tmp_path, creds):
    files = NodeCredentials.under(tmp_path)
    files.save(creds)
    files.remove()
    assert not files.directory.exists()
    files.remove()  # nothing left: no error


def test_the_key_never_shows_in_a_repr(creds):
    assert "PRIVATE" not in repr(creds)
