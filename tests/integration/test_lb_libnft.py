"""nft scripts run in-process through libnftables, inside the namespace asked for."""

import subprocess

import pytest

from netagent.lb import libnft

pytestmark = pytest.mark.root


@pytest.fixture
def ns(netns_factory):
    if not libnft.available():
        pytest.skip("libnftables is not installed")
    return netns_factory("nft")


def test_a_script_lands_in_the_given_namespace_only(ns):
    code, err = libnft.run(ns, "table ip vxtest {\n\tchain c {\n\t}\n}\n")
    assert (code, err) == (0, "")
    inside = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "table ip vxtest" in inside


def test_a_bad_script_reports_the_error_and_changes_nothing(ns):
    code, err = libnft.run(ns, "table ip vxtest {\n\tchain c {\n\t\tbogus rule\n\t}\n}\n")
    assert code != 0 and "Error" in err
    inside = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "vxtest" not in inside


def _list(ns: str, *what: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", *what],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_back_to_back_transactions_are_each_live_when_run_returns(ns):
    # Each context is freed by a helper thread after run() returns; the next run waits
    # for it, and what the previous one committed is already in the kernel.
    assert libnft.run(ns, "table ip vxtest {\n\tchain c {\n\t}\n}\n") == (0, "")
    for i in range(20):
        code, err = libnft.run(
            ns, f"flush chain ip vxtest c\nadd rule ip vxtest c ip daddr 10.9.0.{i} accept\n"
        )
        assert (code, err) == (0, "")
        assert f"ip daddr 10.9.0.{i} accept" in _list(ns, "chain", "ip", "vxtest", "c")


def test_a_failed_call_leaves_the_library_usable(ns):
    with pytest.raises(OSError):
        libnft.run(f"{ns}-missing", "table ip vxtest {\n}\n")
    assert libnft.run(ns, "table ip vxtest {\n}\n") == (0, "")
    code, out, err = libnft.run_json(ns, "list tables")
    assert code == 0 and "vxtest" in out
