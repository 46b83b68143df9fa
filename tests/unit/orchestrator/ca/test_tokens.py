"""Swarm join tokens and node secrets."""

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import authority, minting, tokens
from orchestrator.cluster.objects import NodeRole
from orchestrator.ops.membership import new_cluster

TOKEN_RE = re.compile(r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$")


def made(root: authority.RootCA) -> minting.NewRoot:
    """`root` as the mint hands a new one over (tests make roots in process)."""
    pems = minting.Root(root.cert_pem, root.key_pem or b"")
    return minting.NewRoot(pems, authority.bundle_pem(root))


def a_cluster():
    return new_cluster("c1", made(authority.new_root("c1")))


@pytest.fixture
def cluster():
    return a_cluster()


@pytest.mark.parametrize("role", list(NodeRole))
def test_token_has_swarm_format(cluster, role):
    assert TOKEN_RE.match(tokens.token_for(cluster, role))


def test_worker_and_manager_tokens_share_the_digest_but_not_the_secret(cluster):
    w = tokens.parse_token(tokens.token_for(cluster, NodeRole.WORKER))
    m = tokens.parse_token(tokens.token_for(cluster, NodeRole.MANAGER))
    assert w[0] == m[0] == cluster.digest
    assert w[1] != m[1]


def test_two_swarms_have_different_digests():
    assert a_cluster().digest != a_cluster().digest


def test_digest_is_sha256_of_the_bundle_in_50_base36_chars():
    root = authority.new_root("c1")
    bundle = authority.bundle_pem(root)
    cluster = new_cluster("c1", made(root))
    d = tokens.bundle_digest(bundle)
    assert len(d) == 50
    assert int(d, 36) == int.from_bytes(hashlib.sha256(bundle).digest(), "big")
    assert cluster.digest == d
    assert cluster.ca_cert.encode() == bundle


def test_digest_is_zero_padded_to_50_chars():
    # sha256 values are uniform: about 1 in 36 has a leading zero digit in base36.
    short = next(
        b for b in (str(i).encode() for i in range(10_000)) if tokens.bundle_digest(b)[0] == "0"
    )
    assert len(tokens.bundle_digest(short)) == 50


def test_joiner_accepts_the_bundle_its_token_names():
    root = authority.new_root("c1")
    cluster = new_cluster("c1", made(root))
    tokens.check_bundle(authority.bundle_pem(root), tokens.token_for(cluster, NodeRole.WORKER))


def test_joiner_refuses_a_bundle_its_token_does_not_name():
    cluster = a_cluster()
    other = authority.bundle_pem(authority.new_root("c1"))
    with pytest.raises(PermissionDenied, match="does not match the join token's"):
        tokens.check_bundle(other, tokens.token_for(cluster, NodeRole.WORKER))


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
    other = a_cluster()
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


def test_base36_pads_and_refuses_overflow():
    assert tokens.base36(35, 3) == "00z"
    with pytest.raises(ValueError, match="does not fit"):
        tokens.base36(36**3, 3)


B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
PADDING = st.sampled_from(["", " ", "\n", "\t", "\r\n", "\u2028", "\x1c"])


def _token_like(digest, secret):
    """Tokens (valid when the parts are) with whitespace around them."""
    return st.builds(lambda d, s, pad: pad + tokens.make_token(d, s) + pad, digest, secret, PADDING)


TEXTS = (
    st.text()
    | _token_like(st.text(B36, min_size=50, max_size=50), st.text(B36, min_size=25, max_size=25))
    | _token_like(
        st.text(B36 + "A-\n", min_size=48, max_size=52),
        st.text(B36 + "-", min_size=23, max_size=27),
    )
)


@settings(max_examples=500, deadline=None)
@given(TEXTS)
def test_any_text_parses_to_a_round_tripping_token_or_is_refused_in_one_line(text):
    try:
        digest, secret = tokens.parse_token(text)
    except InvalidArgument as err:
        assert len(str(err).splitlines()) == 1
        assert str(err).startswith("invalid join token ")
        return
    assert tokens.make_token(digest, secret) == text.strip()
    assert tokens.parse_token(tokens.make_token(digest, secret)) == (digest, secret)


@pytest.mark.parametrize("value", [None, 42, b"SWMTKN-1-"])
def test_a_token_that_is_not_text_is_refused(value):
    with pytest.raises(InvalidArgument, match="^invalid join token "):
        tokens.parse_token(value)
