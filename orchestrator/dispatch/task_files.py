"""The files of a task's spec (`TaskSpec.files`): its secrets, opened, and its configs.

Only a node that runs a task gets that task's files, in its desired state. Secrets are
opened (orchestrator.ca.sealing: a mint process) once per sealed value and kept opened
in this manager's memory, never on its disk; the values of secrets gone from the store
are dropped at the next snapshot. A snapshot whose tasks use no secret never opens
anything, and a task without references costs one test.

A secret that does not open (this manager holds no data key, or another one) leaves
that file out and is logged, by name: the node still gets the rest of its state.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping

from netagent.contract.desired import FileKind, TaskFile
from netagent.contract.errors import VxswarmError
from orchestrator.ca import sealing
from orchestrator.cluster.objects import Task
from orchestrator.cluster.secrets import Config, FileRef, Secret
from orchestrator.ops.secrets import KeySource

log = logging.getLogger(__name__)


class OpenedSecrets:
    """Secret values opened by this manager, by id, with the sealed box they came from
    (a value sealed anew is opened anew). Lives as long as the manager's dispatcher."""

    def __init__(self, keys: KeySource):
        self._keys = keys
        self._values: dict[str, tuple[str, bytes]] = {}
        #: Boxes that did not open, and the key id they were tried with: not tried (nor
        #: logged) again at every revision, only once the key changed.
        self._failed: set[str] = set()
        self._failed_with: str | None = None

    def remember(self, secret: Secret, value: bytes) -> None:
        """The value of a secret this manager just sealed: no need to open it again."""
        self._values[secret.id] = (secret.sealed.box, value)

    def value(self, secret: Secret) -> bytes | None:
        kept = self._values.get(secret.id)
        return kept[1] if kept is not None and kept[0] == secret.sealed.box else None

    def open_missing(self, secrets: Iterable[Secret], keep: Mapping[str, Secret]) -> None:
        """Open, in one mint request, those of `secrets` not opened yet; forget values of
        secrets not in `keep` (deleted)."""
        for gone in self._values.keys() - keep.keys():
            del self._values[gone]
        missing = {s.id: s for s in secrets if self.value(s) is None}
        if not missing:
            return
        key = self._keys()
        key_id = key.id if key is not None else None
        if key_id != self._failed_with:
            self._failed, self._failed_with = set(), key_id
        missing = {i: s for i, s in missing.items() if s.sealed.box not in self._failed}
        if not missing:
            return
        if key is None:
            self._failed.update(s.sealed.box for s in missing.values())
            log.error(
                "secrets %s cannot be given to their tasks: this manager holds no data key",
                ", ".join(sorted(s.spec.name for s in missing.values())),
            )
            return
        todo = list(missing.values())
        try:
            values: list[bytes | None] = list(
                sealing.open_sealed(key, [(s.id, s.sealed) for s in todo])
            )
        except VxswarmError:
            # One request for all failed: one each, to give every other its value.
            values = [self._open_one(key, s) for s in todo]
        for s, value in zip(todo, values, strict=True):
            if value is not None:
                self._values[s.id] = (s.sealed.box, value)

    def _open_one(self, key: sealing.DataKey, secret: Secret) -> bytes | None:
        try:
            [value] = sealing.open_sealed(key, [(secret.id, secret.sealed)])
            return value
        except VxswarmError as err:
            self._failed.add(secret.sealed.box)
            log.error("secret %s cannot be given to its tasks: %s", secret.spec.name, err)
            return None


class TaskFiles:
    """Builds `TaskSpec.files` for the tasks of one snapshot."""

    def __init__(
        self,
        opened: OpenedSecrets,
        secrets: Mapping[str, Secret],
        configs: Mapping[str, Config],
        tasks: Iterable[Task],
    ):
        self._secrets = secrets
        self._configs = configs
        self._opened = opened
        # No secret in the store: nothing to open, and nothing kept opened either.
        used = {r.id for t in tasks for r in t.secrets} if secrets else set()
        opened.open_missing((secrets[i] for i in used if i in secrets), secrets)

    def of(self, task: Task) -> tuple[TaskFile, ...]:
        if not task.secrets and not task.configs:
            return ()
        files = [f for r in task.secrets if (f := self._secret(r)) is not None]
        files += [f for r in task.configs if (f := self._config(r)) is not None]
        return tuple(files)

    def _secret(self, ref: FileRef) -> TaskFile | None:
        secret = self._secrets.get(ref.id)
        value = self._opened.value(secret) if secret is not None else None
        if value is None:
            return None
        return _file(FileKind.SECRET, ref, base64.b64encode(value).decode())

    def _config(self, ref: FileRef) -> TaskFile | None:
        config = self._configs.get(ref.id)
        return None if config is None else _file(FileKind.CONFIG, ref, config.data)


def _file(kind: FileKind, ref: FileRef, data: str) -> TaskFile:
    return TaskFile(
        kind=kind,
        id=ref.id,
        name=ref.source,
        target=ref.path(kind),
        data=data,
        uid=ref.uid,
        gid=ref.gid,
        mode=ref.mode,
    )
