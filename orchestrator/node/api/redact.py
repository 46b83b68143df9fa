"""Desired states as the debug views show them: secret and config content left out.

The agent gets each task's files with their content (it must make them); nothing else
does. `/v1/debug/desired/{node}` and the state sent with `vxswarm verify` (its drift
checks never look at files) carry a fixed marker instead of the data, so a JSON dump
cannot print a secret (the field's repr=False only covers repr()).
"""

from __future__ import annotations

from netagent.contract.desired import NodeDesiredState, TaskAssignment

#: What a file's `data` reads in a debug view (not base64: it cannot be mistaken for content).
REDACTED = "<redacted>"


def without_file_data(state: NodeDesiredState) -> NodeDesiredState:
    if not any(t.spec.files for t in state.tasks):
        return state
    return state.model_copy(update={"tasks": tuple(_task(t) for t in state.tasks)})


def _task(task: TaskAssignment) -> TaskAssignment:
    if not task.spec.files:
        return task
    files = tuple(f.model_copy(update={"data": REDACTED}) for f in task.spec.files)
    return task.model_copy(update={"spec": task.spec.model_copy(update={"files": files})})
