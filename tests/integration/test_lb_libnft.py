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
