"""Swarm join tokens and node secrets."""

import re

import pytest

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.cluster import tokens
from orchestrator.cluster.objects import NodeRole

TOKEN_RE = re.compile(r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$")


@pytest.fixture
def cluster():
    return tokens.new_cluster()


@pytest.mark.parametrize("role", list(NodeRole))
def test_token_has_swarm_format(cluster, role):
    assert TOKEN_RE.match(tokens.token_for(cluster, role))


def test_worker_and_manager_tokens_share_the_digest_but_not_the_secret(cluster):
    w = tokens.parse_token(tokens.token_for(cluster, NodeRole.WORKER))
    m = tokens.parse_token(tokens.token_for(cluster, NodeRole.MANAGER))
    assert w[0] == m[0] == cluster.digest
    assert w[1] != m[1]


def test_two_swarms_have_different_digests():
    assert tokens.new_cluster().digest != tokens.new_cluster().digest


def test_digest_is_sha256_of_root_key_in_50_base36_chars():
    d = tokens.make_digest(b"root")
    assert len(d) == 50
    assert int(d, 36) == int.from_bytes(__import__("hashlib").sha256(b"root").digest(), "big")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "SWMTKN-2-" + "a" * 50 + "-" + "b" * 25,
        "SWMTKN-1-" + "a" * 49 + "-" + "b" * 25,
        "SWMTKN-1-" + "a" * 50 + "-" + "b" * 24,
        "SWMTKN-1-" + "A" * 50 + "-" + "b" * 25,
    ],
)
def test_malformed_token_is_refused_naming_it(text):
    with pytest.raises(InvalidArgument) as err:
        tokens.parse_token(text)
    assert str(err.value) == (f"invalid join token {text!r}: expected SWMTKN-1-<digest>-<secret>")


@pytest.mark.parametrize("role", list(NodeRole))
def test_verify_tells_the_role_of_a_current_token(cluster, role):
    assert tokens.verify(cluster, tokens.token_for(cluster, role)) == role


def test_token_of_another_swarm_is_refused(cluster):
    other = tokens.new_cluster()
    with pytest.raises(PermissionDenied, match="^join token is for a different swarm$"):
        tokens.verify(cluster, tokens.token_for(other, NodeRole.WORKER))


def test_rotation_refuses_the_old_token_and_keeps_the_other_role(cluster):
    old_worker = tokens.token_for(cluster, NodeRole.WORKER)
    manager_token = tokens.token_for(cluster, NodeRole.MANAGER)
    rotated = tokens.rotate(cluster, NodeRole.WORKER)
    with pytest.raises(PermissionDenied) as err:
        tokens.verify(rotated, old_worker)
    assert str(err.value) == (
        "invalid join token: the token is not valid for this swarm, or it was rotated"
    )
    assert tokens.verify(rotated, tokens.token_for(rotated, NodeRole.WORKER)) == NodeRole.WORKER
    assert tokens.verify(rotated, manager_token) == NodeRole.MANAGER
    assert rotated.digest == cluster.digest


def test_node_secret_is_checked_per_node(cluster):
    secret = tokens.node_secret(cluster, "node-a")
    tokens.check_node_secret(cluster, "node-a", secret)
    with pytest.raises(PermissionDenied, match="node node-b presented an invalid node secret"):
        tokens.check_node_secret(cluster, "node-b", secret)
    with pytest.raises(PermissionDenied):
        tokens.check_node_secret(cluster, "node-a", "")


def test_base36_pads_and_refuses_overflow():
    assert tokens.base36(35, 3) == "00z"
    with pytest.raises(ValueError, match="does not fit"):
        tokens.base36(36**3, 3)
