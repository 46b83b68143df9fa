"""Compose files as text: YAML 1.2 scalars, ${VAR} interpolation, merging several files."""

from __future__ import annotations

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.stack.loader import interpolate, key_path, load, merge_files, read_file


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_port_pairs_stay_strings_not_base_60_integers(tmp_path):
    doc = read_file(write(tmp_path, "a.yml", "ports:\n  - 8080:80\n  - 80:30\nn: 12\nf: 1.5\n"))
    assert doc == {"ports": ["8080:80", "80:30"], "n": 12, "f": 1.5}


def test_only_true_and_false_are_booleans(tmp_path):
    doc = read_file(write(tmp_path, "a.yml", "a: yes\nb: true\nc: off\nd: False\n"))
    assert doc == {"a": "yes", "b": True, "c": "off", "d": False}


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "bad.yml", "services:\n  web:\n    image: [x\n")
    with pytest.raises(InvalidArgument) as e:
        read_file(path)
    assert str(e.value).startswith(f"{path}: invalid YAML (line ")


@pytest.mark.parametrize(
    ("text", "got"), [("", "an empty file"), ("- a\n", "list"), ("just text\n", "str")]
)
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text, got):
    path = write(tmp_path, "x.yml", text)
    with pytest.raises(InvalidArgument, match=f"expected a mapping .*, got {got}$"):
        read_file(path)


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(InvalidArgument, match=r"cannot read compose file /nonexistent/x.yml: "):
        read_file("/nonexistent/x.yml")


def test_dash_reads_standard_input():
    assert read_file("-", stdin_text="version: '3'\n") == {"version": "3"}


@pytest.mark.parametrize(
    ("text", "env", "want"),
    [
        ("$TAG", {"TAG": "v2"}, "v2"),
        ("whoami:${TAG}", {"TAG": "v2"}, "whoami:v2"),
        ("${TAG:-latest}", {}, "latest"),
        ("${TAG:-latest}", {"TAG": ""}, "latest"),
        ("${TAG-latest}", {"TAG": ""}, ""),
        ("${TAG-latest}", {}, "latest"),
        ("cost $$5", {}, "cost $5"),
        ("a${X}b${Y}c", {"X": "1", "Y": "2"}, "a1b2c"),
    ],
)
def test_variables_are_substituted_like_docker(text, env, want):
    assert interpolate({"k": text}, env, []) == {"k": want}


def test_an_unset_variable_becomes_blank_with_one_warning():
    warnings: list[str] = []
    out = interpolate({"a": "$NOPE", "b": ["${NOPE}"]}, {}, warnings)
    assert out == {"a": "", "b": [""]}
    assert warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_a_required_variable_names_its_key_path():
    with pytest.raises(InvalidArgument) as e:
        interpolate({"services": {"web": {"image": "${IMG:?set the image}"}}}, {}, [])
    assert str(e.value) == (
        "services.web.image: required variable IMG is missing a value: set the image"
    )


def test_a_bad_interpolation_is_refused_with_its_path():
    with pytest.raises(InvalidArgument, match=r"^services\.web\.command: invalid interpolation"):
        interpolate({"services": {"web": {"command": "echo ${1x}"}}}, {}, [])


def test_keys_are_never_interpolated():
    assert interpolate({"$K": 5}, {"K": "x"}, []) == {"$K": 5}


def test_override_file_merges_maps_replaces_scalars_and_commands():
    base = {
        "version": "3",
        "services": {
            "web": {
                "image": "whoami:1",
                "command": ["a", "b"],
                "environment": ["A=1", "B=2"],
                "deploy": {"replicas": 2, "labels": ["x=1"], "placement": {"constraints": ["c1"]}},
                "networks": ["front"],
            }
        },
        "networks": {"front": {"attachable": True}},
    }
    override = {
        "version": "3.8",
        "services": {
            "web": {
                "image": "whoami:2",
                "command": ["c"],
                "environment": {"B": "3", "C": "4"},
                "deploy": {
                    "replicas": 5,
                    "labels": {"y": "2"},
                    "placement": {"constraints": ["c2"]},
                },
                "networks": {"back": {"aliases": ["w"]}},
            },
            "db": {"image": "alpine"},
        },
        "networks": {"front": None, "back": {}},
    }
    merged = merge_files([base, override])
    web = merged["services"]["web"]
    assert merged["version"] == "3.8"
    assert web["image"] == "whoami:2"
    assert web["command"] == ["c"]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert web["deploy"] == {
        "replicas": 5,
        "labels": {"x": "1", "y": "2"},
        "placement": {"constraints": ["c1", "c2"]},
    }
    assert web["networks"] == {"front": None, "back": {"aliases": ["w"]}}
    assert merged["services"]["db"] == {"image": "alpine"}
    assert merged["networks"] == {"front": {"attachable": True}, "back": {}}


def test_override_ports_replace_the_same_published_port_and_add_others():
    base = {"services": {"web": {"image": "x", "ports": ["80:80", "53:53/udp"]}}}
    override = {"services": {"web": {"ports": [{"published": 80, "target": 8080}, "443:443"]}}}
    ports = merge_files([base, override])["services"]["web"]["ports"]
    assert ports == [{"published": 80, "target": 8080}, "53:53/udp", "443:443"]


def test_load_reads_interpolates_and_merges_in_order(tmp_path):
    a = write(tmp_path, "a.yml", "services:\n  web:\n    image: whoami:${TAG:-1}\n")
    b = write(tmp_path, "b.yml", "services:\n  web:\n    deploy:\n      replicas: $N\n")
    raw, warnings = load([a, b], {"N": "3"})
    assert raw == {"services": {"web": {"image": "whoami:1", "deploy": {"replicas": "3"}}}}
    assert warnings == []


def test_load_needs_a_file():
    with pytest.raises(InvalidArgument, match="no compose file given"):
        load([], {})


def test_key_paths_quote_keys_that_would_make_them_ambiguous():
    assert key_path(["services", "web", "ports", 0]) == "services.web.ports.0"
    assert key_path(["services", "a.b", "x\ny"]) == "services.'a.b'.'x\\ny'"
    # A trailing newline too: `$` alone would match just before it.
    assert key_path(["services", "0\n"]) == "services.'0\\n'"
