"""Secret values at rest: sealed with the swarm's data key, which the store never holds.

The model is swarmkit's (manager/deks.go, manager/encryption): what the managers store is
encrypted with a data encryption key (DEK) kept beside each manager's TLS key, never in
the replicated store. swarmkit encrypts each manager's own raft log with a DEK of its own;
here the store is one etcd all managers share, so the swarm has ONE data key, and
a new manager receives it from the leader over mutual TLS when it asks for its etcd
membership (`/v1/managers/member`, orchestrator.node.control.MemberResponse):

    <state dir>/manager/            0700 (removed with the manager's role)
        data.key                    the data key, base64                 0600

A secret's value is sealed with AES-256-GCM (a fresh 96-bit nonce each time, the
secret's id as associated data, so a sealed value copied onto another secret does not
open). AES runs in the mint process (orchestrator.ca.mint: `seal` and `open`), the only
place `cryptography` is imported; one process start seals or opens any number of values.

What this protects: the store's data and its copies (an etcd snapshot, a backup, the
etcd client port, a member's data directory copied off a machine) do not reveal a
secret without the key file of a manager. As in swarmkit without autolock, the key file
sits unencrypted on each manager's disk with its TLS key: whoever reads a manager's
state directory as root reads both. Workers never hold it: they get only the opened
values of their own tasks, in memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import minting
from orchestrator.ca.files import DIR_MODE, _fsync_dir, _write_atomic

KEY_BYTES = 32
MANAGER_DIR = "manager"
KEY_FILE = "data.key"


@dataclass(frozen=True)
class DataKey:
    """The swarm's data key (AES-256)."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise InvalidArgument(
                f"data key of {len(self.key)} bytes: expected {KEY_BYTES}", op="data key"
            )

    @classmethod
    def new(cls) -> DataKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def id(self) -> str:
        """Names the key in what it sealed (a digest: says nothing of the key)."""
        return hashlib.sha256(b"vxswarm data key\0" + self.key).hexdigest()[:16]

    def to_text(self) -> str:
        return base64.b64encode(self.key).decode()

    @classmethod
    def from_text(cls, text: str) -> DataKey:
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidArgument("data key is not base64", op="data key") from None


class Sealed(BaseModel):
    """A value sealed by `seal`: what the store keeps instead of the value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: DataKey.id of the key that sealed it.
    key_id: str
    #: base64 of nonce (12 bytes) + ciphertext + GCM tag (16 bytes).
    box: str


def seal(key: DataKey, values: Sequence[tuple[str, bytes]]) -> list[Sealed]:
    """Each (associated data, value) sealed with `key`."""
    if not values:
        return []
    got = minting.ask(
        "seal",
        key=key.to_text(),
        aad=[aad for aad, _ in values],
        data=[base64.b64encode(v).decode() for _, v in values],
    )
    return [Sealed(key_id=key.id, box=box) for box in got["sealed"]]


def open_sealed(key: DataKey, values: Sequence[tuple[str, Sealed]]) -> list[bytes]:
    """Each (associated data, sealed value) opened with `key`; PermissionDenied for one
    sealed with another key, or changed since."""
    if not values:
        return []
    for aad, sealed in values:
        if sealed.key_id != key.id:
            raise PermissionDenied(
                f"the value of {aad} was sealed with data key {sealed.key_id}, and this "
                f"manager holds data key {key.id}",
                obj=aad,
                op="open secret",
            )
    got = minting.ask(
        "open",
        key=key.to_text(),
        aad=[aad for aad, _ in values],
        sealed=[s.box for _, s in values],
    )
    return [base64.b64decode(v) for v in got["data"]]


@dataclass(frozen=True)
class KeyFile:
    """A manager's copy of the data key (see the module docstring)."""

    path: Path

    @classmethod
    def under(cls, state_dir: Path) -> KeyFile:
        return cls(Path(state_dir) / MANAGER_DIR / KEY_FILE)

    def load(self) -> DataKey | None:
        """The key; None when this node holds none."""
        try:
            return DataKey.from_text(self.path.read_text())
        except FileNotFoundError:
            return None

    def save(self, key: DataKey) -> None:
        """Write the key (0600 in a 0700 directory), whole or not at all."""
        directory = self.path.parent
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)
        os.chmod(directory, DIR_MODE)
        _write_atomic(self.path, key.to_text().encode())
        _fsync_dir(directory)
