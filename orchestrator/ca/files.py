"""Where a node keeps its credentials, and how they are written.

    <state dir>/certificates/        0700
        swarm-root-ca.crt            the root CA bundle this node trusts     0600
        swarm-node.crt               its certificate (leaf, intermediates)   0600
        swarm-node.key               its private key                         0600

Swarm's file names. Every file is written whole or not at all: a temporary file in
the same directory, written, fsynced, renamed over the old one, then the directory
fsynced; a reader sees the old content or the new, never half of it. The temporary
file is born 0600 (the mode given to `os.open`, which a umask can only narrow) and
the directory 0700, so no moment exists where the key is readable by anyone else.
The process umask is not changed: it is process-wide and the daemon has other
threads creating files (task resolv.conf, the data plane's records) at any time.

Key and certificate are two renames. A crash between them leaves a pair that does
not match, which the daemon refuses on reading them back (`tls.shown_identity`),
so the node renews or re-joins instead of
presenting a certificate it cannot use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from netagent.contract.errors import NotFound

CERT_DIR = "certificates"
ROOT_CA_FILE = "swarm-root-ca.crt"
NODE_CERT_FILE = "swarm-node.crt"
NODE_KEY_FILE = "swarm-node.key"
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Credentials:
    """A node's trust bundle, certificate and key, as PEM bytes."""

    bundle_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def _write_atomic(path: Path, data: bytes) -> None:
    """`path` holds `data` (mode 0600) or, after a crash, its previous content."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class NodeCredentials:
    """The credential files of one node, under `directory` (`<state dir>/certificates`)."""

    directory: Path

    @classmethod
    def under(cls, state_dir: Path) -> NodeCredentials:
        return cls(Path(state_dir) / CERT_DIR)

    @property
    def root_ca_path(self) -> Path:
        return self.directory / ROOT_CA_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / NODE_CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / NODE_KEY_FILE

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.root_ca_path, self.cert_path, self.key_path))

    def _ensure_dir(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.directory, DIR_MODE)
        os.chmod(self.directory, DIR_MODE)

    def save(self, creds: Credentials) -> None:
        """Write the three files (bundle, key, certificate), each atomically."""
        self._ensure_dir()
        _write_atomic(self.root_ca_path, creds.bundle_pem)
        _write_atomic(self.key_path, creds.key_pem)
        _write_atomic(self.cert_path, creds.cert_pem)
        _fsync_dir(self.directory)

    def save_bundle(self, bundle_pem: bytes) -> None:
        """Replace the trust bundle alone (a root rotation reached this node)."""
        self._ensure_dir()
        _write_atomic(self.root_ca_path, bundle_pem)
        _fsync_dir(self.directory)

    def load(self) -> Credentials:
        """The three files; NotFound when one is missing. (Whether they make a TLS
        identity is `tls.shown_identity`'s check.)"""
        try:
            creds = Credentials(
                bundle_pem=self.root_ca_path.read_bytes(),
                cert_pem=self.cert_path.read_bytes(),
                key_pem=self.key_path.read_bytes(),
            )
        except FileNotFoundError as err:
            raise NotFound(
                f"no node credentials at {err.filename}: this node has not joined a swarm",
                obj=str(err.filename),
                op="load credentials",
            ) from None
        return creds

    def remove(self) -> None:
        """Delete the three files and the directory (leaving the swarm); by name only."""
        for path in (self.cert_path, self.key_path, self.root_ca_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        try:
            self.directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as err:
            if err.errno != errno.ENOTEMPTY:  # a temporary file left by a crash: keep it
                raise
