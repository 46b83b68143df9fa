"""`--secret`/`--config` values and `--secret-add/-rm` on a spec, as docker parses them."""

from __future__ import annotations

import pytest

from netagent.contract.desired import FileKind
from netagent.contract.errors import InvalidArgument
from orchestrator.cli.file_flags import (
    apply_updates,
    create_entries,
    parse_file_ref,
    pretty_lines,
)
from orchestrator.cluster.objects import ServiceSpec
from orchestrator.cluster.secrets import FileRef


def test_short_syntax_names_source_and_target():
    assert parse_file_ref("db_pass", "secret") == {"source": "db_pass", "target": "db_pass"}


def test_long_syntax_reads_every_field_and_an_octal_mode():
    got = parse_file_ref("src=db,target=pw.txt,uid=33,gid=44,mode=0400", "secret")
    assert got == {"source": "db", "target": "pw.txt", "uid": 33, "gid": 44, "mode": 0o400}


def test_long_syntax_without_target_uses_the_source():
    assert parse_file_ref("source=app.conf,mode=292", "config")["target"] == "app.conf"
    assert parse_file_ref("source=app.conf,mode=292", "config")["mode"] == 292


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("source=a,colour=red", "invalid field in secret request: colour"),
        ("source=a,target", "invalid field 'target' must be a key=value pair"),
        ("target=/x", "source is required"),
        ("source=a,mode=rw", "invalid mode specified: 'rw' is not a number"),
        ("source=a,uid=-1", "invalid uid specified"),
        ("", "expected a secret name"),
    ],
)
def test_bad_values_are_one_line_errors_naming_them(value, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_file_ref(value, "secret")


def test_create_entries_fill_secrets_and_configs():
    got = create_entries({"secret_refs": ("a",), "config_refs": ("source=c,target=/etc/c",)})
    assert got == {
        "secrets": [{"source": "a", "target": "a"}],
        "configs": [{"source": "c", "target": "/etc/c"}],
    }


def spec(**kw) -> dict:
    return ServiceSpec(name="web", image="whoami", **kw).model_dump(mode="json")


def test_secret_rm_then_add_and_an_add_replaces_the_same_target():
    s = spec(
        secrets=[FileRef(source="a", id="1"), FileRef(source="b", id="2", target="x")],
        configs=[FileRef(source="c", id="3")],
    )
    out = apply_updates(s, {"secret_rm": ["a"], "secret_add": ["source=b2,target=x", "d"]})
    assert [(r["source"], r["target"]) for r in out["secrets"]] == [("b2", "x"), ("d", "d")]
    assert out["configs"] == s["configs"]


def test_no_flag_changes_nothing():
    s = spec(secrets=[FileRef(source="a")])
    assert apply_updates(s, {}) == s


def test_paths_inside_the_task_follow_docker():
    assert FileRef(source="pw").path(FileKind.SECRET) == "/run/secrets/pw"
    assert FileRef(source="pw", target="/etc/pw").path(FileKind.SECRET) == "/etc/pw"
    assert FileRef(source="app.conf").path(FileKind.CONFIG) == "/app.conf"


def test_a_target_with_dot_dot_is_refused():
    with pytest.raises(ValueError, match="without '..'"):
        FileRef(source="pw", target="../etc/shadow")


def test_two_references_to_one_target_are_refused():
    with pytest.raises(ValueError, match="duplicate secret target for b not allowed"):
        ServiceSpec(
            name="web",
            image="whoami",
            secrets=[FileRef(source="a", target="x"), FileRef(source="b", target="x")],
        )


def test_service_inspect_pretty_shows_references_as_docker():
    s = spec(secrets=[FileRef(source="pw", target="/etc/pw")], configs=[FileRef(source="c")])
    assert pretty_lines(s) == [
        " Secrets:",
        "  Target:\t/etc/pw",
        "   Source:\tpw",
        " Configs:",
        "  Target:\tc",
        "   Source:\tc",
    ]
