"""Debug views of a desired state never carry secret or config content."""

from __future__ import annotations

import base64

from netagent.contract.desired import TaskFile, TaskSpec
from orchestrator.node.api.redact import REDACTED, without_file_data
from tests import factories


def test_file_data_is_replaced_in_every_dump_and_nothing_else_changes():
    secret = base64.b64encode(b"hunter2-hunter2").decode()
    files = (TaskFile(kind="secret", id="s", name="pw", target="/run/secrets/pw", data=secret),)
    with_files = factories.task("t1", "web.1").model_copy(
        update={"spec": TaskSpec(image="whoami", files=files)}
    )
    plain = factories.task("t2", "web.2")
    state = factories.state("n1", 3, tasks=(with_files, plain))
    shown = without_file_data(state)
    assert secret not in shown.model_dump_json() and secret in state.model_dump_json()
    assert shown.tasks[0].spec.files[0].data == REDACTED
    assert shown.tasks[0].spec.files[0].target == "/run/secrets/pw"
    assert shown.tasks[1] is plain
    assert without_file_data(factories.state("n1", 4, tasks=(plain,))).tasks == (plain,)
