"""Fuzzing the compose path: whatever a file holds, loading, interpolating, merging,
validating and converting it either succeeds or raises InvalidArgument (one line
naming a key path) — never another exception, never a traceback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netagent.contract.errors import InvalidArgument
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert
from orchestrator.stack.loader import interpolate, merge_files

#: Keys the parser knows, mixed with junk, so fuzzed files reach deep into the models.
KEYS = st.sampled_from(
    [
        "version", "services", "networks", "web", "image", "command", "environment", "ports",
        "deploy", "replicas", "mode", "placement", "constraints", "preferences", "spread",
        "update_config", "restart_policy", "delay", "aliases", "external", "ipam", "config",
        "subnet", "published", "target", "protocol", "build", "x-y", "name", "labels",
    ]
) | st.text(max_size=6)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False)
    | st.sampled_from(["whoami", "3", "8080:80", "1m30s", "node.role==manager", "${X:-1}", "$"])
    | st.text(max_size=12)
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=250, deadline=None)
@given(st.lists(st.dictionaries(KEYS, DOCS, max_size=4), min_size=1, max_size=3))
def test_any_document_is_a_stack_or_one_invalid_argument(docs):
    try:
        merged = merge_files([interpolate(d, {"X": "2"}, []) for d in docs])
        compose, _ = parse(merged)
        convert(compose, "fz", {})
    except InvalidArgument as err:
        assert "\n" not in str(err) and str(err)
