"""Compose `secrets:` / `configs:` → what a stack makes and what its services reference,
and the deploy plan's steps for them."""

from __future__ import annotations

import base64

import pytest

from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert
from orchestrator.stack.deploy import Action, Kind, plan
from orchestrator.stack.loader import load
from orchestrator.stack.names import NAMESPACE_LABEL


def stack_of(raw: dict, base_dir: str, stack: str = "shop"):
    compose, _ = parse(raw)
    return convert(compose, stack, {}, base_dir=base_dir)


@pytest.fixture
def compose(tmp_path):
    (tmp_path / "db_pass.txt").write_bytes(b"hunter2\n")
    (tmp_path / "app.conf").write_bytes(b"port=80\n")
    return {
        "services": {
            "web": {
                "image": "whoami",
                "secrets": [
                    "db_pass",
                    {"source": "api_key", "target": "key", "uid": "33", "mode": "0400"},
                ],
                "configs": [{"source": "app", "target": "/etc/app.conf"}],
            }
        },
        "secrets": {"db_pass": {"file": "./db_pass.txt"}, "api_key": {"external": True}},
        "configs": {"app": {"file": "app.conf", "labels": {"team": "a"}}},
    }


def test_declared_files_are_read_and_named_for_the_stack(compose, tmp_path):
    spec = stack_of(compose, str(tmp_path))
    secret, config = spec.files
    assert (secret["kind"], secret["name"]) == ("secret", "shop_db_pass")
    assert base64.b64decode(secret["data"]) == b"hunter2\n"
    assert secret["labels"] == {NAMESPACE_LABEL: "shop"}
    assert (config["name"], config["labels"]) == (
        "shop_app",
        {"team": "a", NAMESPACE_LABEL: "shop"},
    )
    assert spec.external_files == (("secret", "api_key"),)


def test_services_reference_the_real_names_with_the_short_target(compose, tmp_path):
    (web,) = stack_of(compose, str(tmp_path)).services
    assert [(r["source"], r["target"], r["uid"], r["mode"]) for r in web["secrets"]] == [
        ("shop_db_pass", "db_pass", 0, 0o444),
        ("api_key", "key", 33, 0o400),
    ]
    assert [(r["source"], r["target"]) for r in web["configs"]] == [("shop_app", "/etc/app.conf")]


def test_a_missing_file_refuses_the_deploy_naming_it(compose, tmp_path):
    (tmp_path / "db_pass.txt").unlink()
    with pytest.raises(InvalidArgument, match=r"^secrets\.db_pass\.file: cannot read .*db_pass"):
        stack_of(compose, str(tmp_path))


def test_an_undeclared_secret_is_refused_with_its_path(compose, tmp_path):
    compose["services"]["web"]["secrets"].append("nope")
    with pytest.raises(InvalidArgument, match=r"services\.web\.secrets\.2: secret 'nope' is not"):
        stack_of(compose, str(tmp_path))


def test_external_with_file_is_refused(compose, tmp_path):
    compose["secrets"]["api_key"]["file"] = "x"
    with pytest.raises(InvalidArgument, match="conflicting parameters 'external' and 'file'"):
        stack_of(compose, str(tmp_path))


def existing(name: str, stack: str | None = "shop") -> dict:
    labels = {NAMESPACE_LABEL: stack} if stack else {}
    return {"id": f"id-{name}", "spec": {"name": name, "labels": labels}}


def test_plan_makes_the_files_before_the_services_and_keeps_existing_ones(compose, tmp_path):
    spec = stack_of(compose, str(tmp_path))
    files = {"secret": [existing("api_key", None), existing("shop_db_pass")], "config": []}
    steps = [(s.action, s.kind, s.name) for s in plan(spec, [], [], files=files).steps]
    assert steps == [
        (Action.CREATE, Kind.NETWORK, "shop_default"),
        (Action.KEEP, Kind.SECRET, "shop_db_pass"),
        (Action.CREATE, Kind.CONFIG, "shop_app"),
        (Action.CREATE, Kind.SERVICE, "shop_web"),
    ]


def test_plan_refuses_a_missing_external_secret(compose, tmp_path):
    spec = stack_of(compose, str(tmp_path))
    with pytest.raises(NotFound, match="secret 'api_key' is declared as external"):
        plan(spec, [], [], files={"secret": [], "config": []})


def test_plan_refuses_a_name_taken_outside_the_stack(compose, tmp_path):
    spec = stack_of(compose, str(tmp_path))
    files = {"secret": [existing("api_key", None), existing("shop_db_pass", None)]}
    with pytest.raises(Conflict, match="secret shop_db_pass already exists and is not part"):
        plan(spec, [], [], files=files)


def test_a_yaml_mode_0440_is_octal_as_docker_reads_it(tmp_path):
    (tmp_path / "pw").write_bytes(b"x")
    (tmp_path / "stack.yml").write_text(
        "services:\n  web:\n    image: alpine\n    secrets:\n"
        "      - {source: pw, mode: 0440}\n      - {source: pw, target: b, mode: 288}\n"
        "secrets:\n  pw:\n    file: pw\n"
    )
    raw, _ = load([str(tmp_path / "stack.yml")], {})
    (web,) = stack_of(raw, str(tmp_path)).services
    assert [r["mode"] for r in web["secrets"]] == [0o440, 0o440]
