"""Filters, -q, --no-trunc and Go templates on every listing, and `inspect -f`, on a real
3-node lab: the answers are checked against the API's own JSON (`--format json`)."""

from __future__ import annotations

import json
import re

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]

STACK = """\
version: "3.8"
services:
  api:
    image: alpine
    command: sleep 100000
    deploy:
      replicas: 2
      labels:
        role: api
  db:
    image: alpine
    command: sleep 100000
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    with running_lab(root) as lab:
        lab.run("network", "create", "--label", "team=a", "webnet", check=True)
        lab.run("network", "create", "othernet", check=True)
        create = ("service", "create", "-d")
        lab.run(*create, "--name", "web", "--replicas", "3", "--label", "tier=front",
                "--network", "webnet", "alpine", "sleep", "100000", check=True)  # fmt: skip
        lab.run(*create, "--name", "webapp", "--mode", "global", "alpine", "sleep", "100000",
                check=True)  # fmt: skip
        compose = root / "shop.yml"
        compose.write_text(STACK)
        lab.run("stack", "deploy", "-c", str(compose), "shop", check=True)
        lab.converge("web", 3, timeout=60)
        lab.converge("webapp", 3, timeout=60)
        lab.converge("shop_api", 2, timeout=60)
        yield lab


def out(lab: SwarmLab, *args: str) -> list[str]:
    return lab.run(*args, check=True).out.splitlines()


def refused(lab: SwarmLab, *args: str) -> str:
    """A command that must fail with one line on stderr and nothing on stdout."""
    res = lab.run(*args)
    assert (res.code, res.out) == (1, ""), (res.code, res.out, res.err)
    assert res.err.count("\n") == 1, res.err
    return res.err.strip()


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


# service ls / stack services --------------------------------------------------------


def test_service_ls_filters_by_name_prefix_mode_label_and_id(lab):
    services = lab.json("service", "ls")
    ids = {s["spec"]["name"]: s["id"] for s in services}
    fmt = ("--format", "{{.Name}}")
    assert out(lab, "service", "ls", "-f", "name=web", *fmt) == ["web", "webapp"]
    assert out(lab, "service", "ls", "-f", "name=web", "-f", "mode=global", *fmt) == ["webapp"]
    assert out(lab, "service", "ls", "-f", "name=db", "-f", "name=web", *fmt) == ["web", "webapp"]
    assert out(lab, "service", "ls", "-f", "label=tier=front", *fmt) == ["web"]
    assert out(lab, "service", "ls", "-f", "label=role", *fmt) == ["shop_api"]
    assert out(lab, "service", "ls", "-f", f"id={ids['webapp'][:6]}", *fmt) == ["webapp"]
    # -q: short IDs; the JSON keeps the API's objects, filtered.
    assert out(lab, "service", "ls", "-q", "-f", "name=shop") == [
        ids["shop_api"][:12],
        ids["shop_db"][:12],
    ]
    filtered = lab.json("service", "ls", "-f", "mode=global")
    assert [s["id"] for s in filtered] == [ids["webapp"]]


def test_service_ls_templates_use_docker_field_names(lab):
    table = out(lab, "service", "ls", "--format", "table {{.Name}}\\t{{.Replicas}}\\t{{.Mode}}")
    assert columns(table[0]) == ["NAME", "REPLICAS", "MODE"]
    assert ["web", "3/3", "replicated"] in [columns(r) for r in table[1:]]
    rows = [json.loads(r) for r in out(lab, "service", "ls", "--format", "{{json .}}")]
    assert set(rows[0]) == {"ID", "Name", "Mode", "Replicas", "Image", "Ports"}
    assert {r["Name"]: r["Replicas"] for r in rows}["webapp"] == "3/3"
    # The default table is unchanged.
    assert columns(out(lab, "service", "ls")[0]) == [
        "ID",
        "NAME",
        "MODE",
        "REPLICAS",
        "IMAGE",
        "PORTS",
    ]


def test_stack_services_and_stack_ls(lab):
    assert out(lab, "stack", "services", "shop", "--format", "{{.Name}} {{.Mode}}") == [
        "shop_api replicated",
        "shop_db replicated",
    ]
    assert out(lab, "stack", "services", "shop", "-f", "name=shop_d", "--format", "{{.Name}}") == [
        "shop_db"
    ]
    quiet = out(lab, "stack", "services", "shop", "-q", "-f", "label=role=api")
    assert quiet == [
        s["id"][:12] for s in lab.json("service", "ls") if s["spec"]["name"] == "shop_api"
    ]
    assert out(lab, "stack", "ls", "--format", "{{.Name}}={{.Services}}") == ["shop=2"]
    assert out(lab, "stack", "ls", "--format", "table {{.Name}}") == ["NAME", "shop"]


# service ps / node ps / stack ps ----------------------------------------------------


def test_service_ps_filters_quiet_and_no_trunc(lab):
    tasks = lab.tasks("web")
    hosts = lab.hostnames()
    on_worker1 = sorted(t["id"] for t in tasks if hosts.get(t["node_id"]) == "worker1")
    assert on_worker1, "the spread put no web task on worker1"
    quiet = out(lab, "service", "ps", "web", "-q", "--no-trunc", "-f", "node=worker1")
    assert sorted(quiet) == on_worker1
    short = out(lab, "service", "ps", "web", "-q", "-f", "desired-state=running")
    assert sorted(short) == sorted(t["id"][:12] for t in tasks if t["desired_state"] == "running")
    assert out(lab, "service", "ps", "web", "-q", "-f", "desired-state=shutdown") == []
    assert out(lab, "service", "ps", "web", "-f", "name=web.2", "--format", "{{.Name}}") == [
        "web.2"
    ]
    assert out(
        lab, "service", "ps", "web", "-f", f"id={tasks[0]['id'][:8]}", "-q", "--no-trunc"
    ) == [tasks[0]["id"]]
    full = out(lab, "service", "ps", "web", "--no-trunc")
    assert sorted(ln.split()[0] for ln in full[1:]) == sorted(t["id"] for t in tasks)


def test_task_templates_and_their_headers(lab):
    table = out(lab, "service", "ps", "web", "--format",
                "table {{.Name}}\\t{{.Node}}\\t{{.DesiredState}}\\t{{.CurrentState}}")  # fmt: skip
    assert columns(table[0]) == ["NAME", "NODE", "DESIRED STATE", "CURRENT STATE"]
    assert sorted(columns(r)[0] for r in table[1:]) == ["web.1", "web.2", "web.3"]
    assert all(columns(r)[3].startswith("Running ") for r in table[1:])
    rows = [json.loads(r) for r in out(lab, "service", "ps", "web", "--format", "{{json .}}")]
    assert set(rows[0]) == {
        "ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"
    }  # fmt: skip
    assert sorted(r["Node"] for r in rows) == sorted(lab.hostnames().values())


def test_node_ps_and_stack_ps(lab):
    hosts = {v: k for k, v in lab.hostnames().items()}
    on_worker2 = lab.json("node", "ps", "worker2")
    assert on_worker2 and all(t["node_id"] == hosts["worker2"] for t in on_worker2)
    quiet = out(lab, "node", "ps", "worker2", "-q", "--no-trunc")
    assert sorted(quiet) == sorted(t["id"] for t in on_worker2)
    names = out(lab, "node", "ps", "worker2", "-f", "name=webapp", "--format", "{{.Name}}")
    assert names == [f"webapp.{t['slot']}" for t in on_worker2 if t["service_name"] == "webapp"]
    stack = out(lab, "stack", "ps", "shop", "-f", "name=shop_api", "--format", "{{.Name}}")
    assert sorted(stack) == ["shop_api.1", "shop_api.2"]
    api = [t for t in lab.tasks("shop_api")]
    quiet = out(lab, "stack", "ps", "shop", "-q", "--no-trunc", "-f", "name=shop_api")
    assert sorted(quiet) == sorted(t["id"] for t in api)


# node ls ----------------------------------------------------------------------------


def test_node_ls_filters_and_templates(lab):
    nodes = {n["hostname"]: n for n in lab.json("node", "ls")}
    fmt = ("--format", "{{.Hostname}}")
    assert out(lab, "node", "ls", "-f", "role=worker", *fmt) == ["worker1", "worker2"]
    assert out(lab, "node", "ls", "-f", "role=manager", *fmt) == ["manager1"]
    assert out(lab, "node", "ls", "-f", "name=work", "-f", "name=man", *fmt) == [
        "manager1",
        "worker1",
        "worker2",
    ]
    assert out(lab, "node", "ls", "-f", "membership=pending", *fmt) == []
    assert out(lab, "node", "ls", "-q", "-f", f"id={nodes['worker1']['id'][:5]}") == [
        nodes["worker1"]["id"]
    ]
    lab.run("node", "update", "--label-add", "zone=east", "worker2", check=True)
    assert out(lab, "node", "ls", "-f", "node.label=zone=east", *fmt) == ["worker2"]
    assert out(lab, "node", "ls", "-f", "label=zone", *fmt) == ["worker2"]
    rows = out(lab, "node", "ls", "--format",
               "{{.Hostname}} {{.Self}} {{.Status}} {{.TLSStatus}} {{.ManagerStatus}}")  # fmt: skip
    assert [r.rstrip() for r in rows] == [
        "manager1 true Ready Ready Leader",
        "worker1 false Ready Ready",
        "worker2 false Ready Ready",
    ]
    table = out(lab, "node", "ls", "--format", "table {{.Hostname}}\\t{{.EngineVersion}}")
    assert columns(table[0]) == ["HOSTNAME", "ENGINE VERSION"]


# network ls -------------------------------------------------------------------------


def test_network_ls_filters_quiet_no_trunc_and_templates(lab):
    nets = {n["spec"]["name"]: n for n in lab.json("network", "ls")}
    fmt = ("--format", "{{.Name}}")
    assert out(lab, "network", "ls", "-f", "label=team=a", *fmt) == ["webnet"]
    assert out(lab, "network", "ls", "-f", "name=net", *fmt) == ["othernet", "webnet"]
    assert out(lab, "network", "ls", "-f", "driver=overlay", "-f", "name=ingress", *fmt) == [
        "ingress"
    ]
    assert out(lab, "network", "ls", "-f", "scope=local", *fmt) == []
    assert out(lab, "network", "ls", "-q", "-f", "name=webnet") == [nets["webnet"]["id"][:12]]
    assert out(lab, "network", "ls", "-q", "--no-trunc", "-f", "name=webnet") == [
        nets["webnet"]["id"]
    ]
    template = 'table {{.ID}}\\t{{.Name}}\\t{{.Label "team"}}\\t{{.VNI}}\\t{{.Subnet}}'
    table = out(lab, "network", "ls", "-f", "name=webnet", "--format", template)
    assert columns(table[0]) == ["NETWORK ID", "NAME", "LABEL", "VNI", "SUBNET"]
    webnet = nets["webnet"]
    assert columns(table[1]) == [
        webnet["id"][:12],
        "webnet",
        "a",
        str(webnet["vni"]),
        webnet["subnet"],
    ]


# inspect -f -------------------------------------------------------------------------


def test_inspect_format_runs_over_the_json_with_docker_spellings(lab):
    (web,) = lab.json("service", "inspect", "web")
    template = '{{.ID}} {{.Spec.Name}} {{index .Spec.Labels "tier"}} {{.Spec.Replicas}}'
    got = out(lab, "service", "inspect", "web", "webapp", "-f", template)
    assert got[0] == f"{web['id']} web front 3"
    assert got[1].split()[1] == "webapp"
    assert out(lab, "service", "inspect", "web", "--format", "{{json .Spec.Labels}}") == [
        '{"tier":"front"}'
    ]
    assert out(lab, "node", "inspect", "self", "-f", "{{.Hostname}} {{.Role}}") == [
        "manager1 manager"
    ]
    net = lab.json("network", "inspect", "webnet")[0]
    assert out(lab, "network", "inspect", "webnet", "-f", "{{.Spec.Name}}/{{.VNI}}") == [
        f"webnet/{net['vni']}"
    ]
    assert out(
        lab,
        "network",
        "inspect",
        "webnet",
        "-f",
        "{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}}{{end}}",
    ) == ["team=a"]


# errors -----------------------------------------------------------------------------


def test_unknown_fields_and_filters_are_one_line_errors_naming_the_valid_ones(lab):
    err = refused(lab, "service", "ls", "--format", "{{.Nmae}}")
    assert err == (
        'Error: template: :1:2: executing "" at <.Nmae>: can\'t evaluate field Nmae '
        "(valid fields: ID, Image, Mode, Name, Ports, Replicas)"
    )
    err = refused(lab, "service", "ps", "web", "--format", "table {{.Nodes}}")
    assert "can't evaluate field Nodes (valid fields: CurrentState, DesiredState, Error, ID" in err
    err = refused(lab, "node", "ls", "-f", "status=ready")
    assert err == (
        "Error: Invalid filter 'status' (valid filters: id, label, membership, name, "
        "node.label, role)"
    )
    err = refused(lab, "network", "ls", "-f", "scope=planet")
    assert err == "Error: Invalid filter 'scope=planet' (valid scope values: swarm, global, local)"
    err = refused(lab, "stack", "ps", "shop", "-f", "desired-state=up")
    assert "Invalid filter 'desired-state=up'" in err
    err = refused(lab, "service", "inspect", "web", "-f", "{{.Spec.Nmae}}")
    assert "can't evaluate field Nmae (valid fields: Command, " in err
    assert ", Constraints, " in err and ", Name, " in err
    err = refused(lab, "node", "inspect", "self", "-f", "{{.Hostname")
    assert err == "Error: template: :1: unclosed action"
    err = refused(lab, "network", "ls", "--format", "{{nope .Name}}")
    assert err == 'Error: template: :1: function "nope" not defined'


def test_a_service_created_later_is_filtered_in_by_its_label(lab):
    """The filters read live state: a new labelled service shows up, then goes."""
    with lab.service("late", "--label", "tier=front", "alpine", "sleep", "100000"):
        wait_for(
            "late in the label filter",
            lambda: (
                out(lab, "service", "ls", "-f", "label=tier=front", "--format", "{{.Name}}")
                == ["late", "web"]
            ),
        )
    assert out(lab, "service", "ls", "-f", "label=tier=front", "--format", "{{.Name}}") == ["web"]
