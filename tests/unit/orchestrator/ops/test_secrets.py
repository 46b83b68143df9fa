"""Secrets and configs on a real manager over a real etcd: create, inspect, rm, the
refusal while in use, the value sealed at rest, and each task's files in its node's
desired state only."""

from __future__ import annotations

import base64
import logging

import pytest

from netagent.contract.desired import FileKind
from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.ca.sealing import DataKey
from orchestrator.cluster import keys
from orchestrator.cluster.secrets import Config, FileRef, Secret, SecretSpec
from orchestrator.node.api.redact import without_file_data
from orchestrator.node.api.secret_routes import view

VALUE = b"s3cr3t-value-that-must-stay-sealed"
SECRET, CONFIG = FileKind.SECRET, FileKind.CONFIG


def create(swarm, kind=SECRET, name="db_pass", data=VALUE):
    return swarm.m.create_file(kind, SecretSpec(name=name), data)


def files_by_node(swarm) -> dict[str, list]:
    return {
        name: [f for t in swarm.m.desired_state(swarm.id(name)).tasks for f in t.spec.files]
        for name in swarm.nodes
    }


def test_a_secret_is_listed_and_found_by_name_id_and_prefix(swarm):
    secret = create(swarm, name="db_pass")
    assert [s.spec.name for s in swarm.m.list_files(SECRET)] == ["db_pass"]
    for ref in ("db_pass", secret.id, secret.id[:6]):
        assert swarm.m.get_file(SECRET, ref).id == secret.id
    assert swarm.m.list_files(CONFIG) == []


def test_a_name_in_use_is_refused(swarm):
    create(swarm)
    with pytest.raises(Conflict, match="secret db_pass already exists"):
        create(swarm)


@pytest.mark.parametrize("name", ["-x", "a/b", "x" * 65, "semi;colon"])
def test_docker_refuses_these_names_and_so_do_we(swarm, name):
    with pytest.raises(InvalidArgument, match="only 64 \\[a-zA-Z0-9-_.\\] characters allowed"):
        swarm.m.create_file(SECRET, {"name": name}, VALUE)


def test_empty_or_too_big_data_is_refused_without_showing_it(swarm):
    with pytest.raises(InvalidArgument, match="larger than 0 and less than 512000 bytes"):
        create(swarm, data=b"")
    with pytest.raises(InvalidArgument) as err:
        create(swarm, data=b"A" * 600 * 1024)
    assert "AAAA" not in str(err.value)


def test_the_value_is_sealed_in_etcd(swarm, etcd):
    secret = create(swarm)
    key = keys.objects_prefix(swarm.seat.root) + f"secret/{secret.id}".encode()
    kvs, _ = etcd.client.range(key)
    [kv] = kvs
    assert VALUE not in kv.value
    assert base64.b64encode(VALUE) not in kv.value
    assert secret.spec.name.encode() in kv.value  # the object is there, its value is not
    stored = Secret.model_validate_json(kv.value)
    assert stored.sealed.key_id == swarm.data_key.id


def test_a_config_is_kept_as_it_came(swarm, etcd):
    config = swarm.m.create_file(CONFIG, {"name": "app.conf"}, b"port=80\n")
    assert isinstance(config, Config)
    assert base64.b64decode(swarm.m.get_file(CONFIG, "app.conf").data) == b"port=80\n"


def test_only_the_node_running_the_task_gets_its_files(swarm):
    create(swarm)
    swarm.m.create_file(CONFIG, {"name": "app.conf"}, b"port=80\n")
    swarm.web(
        replicas=1,
        secrets=[FileRef(source="db_pass", mode=0o400, uid=33)],
        configs=[FileRef(source="app.conf", target="/etc/app.conf")],
    )
    swarm.tick()
    [task] = swarm.current()
    host = next(n for n in swarm.nodes if swarm.id(n) == task.node_id)
    got = files_by_node(swarm)
    assert all(not files for name, files in got.items() if name != host)
    secret, config = got[host]
    assert (secret.kind, secret.name, secret.target) == (SECRET, "db_pass", "/run/secrets/db_pass")
    assert base64.b64decode(secret.data) == VALUE
    assert (secret.uid, secret.mode) == (33, 0o400)
    assert (config.target, base64.b64decode(config.data)) == ("/etc/app.conf", b"port=80\n")


def test_debug_output_of_a_desired_state_holds_no_secret_value(swarm):
    create(swarm)
    swarm.web(replicas=1, secrets=[FileRef(source="db_pass")])
    swarm.tick()
    [task] = swarm.current()
    shown = without_file_data(swarm.m.desired_state(task.node_id)).model_dump_json()
    assert base64.b64encode(VALUE).decode() not in shown
    assert "/run/secrets/db_pass" in shown


def test_a_new_leader_opens_the_sealed_value_with_the_key(swarm):
    create(swarm)
    swarm.web(replicas=1, secrets=[FileRef(source="db_pass")])
    swarm.tick()
    [task] = swarm.current()
    [spec] = [t.spec for t in swarm.reopen().desired_state(task.node_id).tasks]
    assert base64.b64decode(spec.files[0].data) == VALUE


def test_a_manager_with_another_key_leaves_the_file_out_and_says_so(swarm, caplog):
    create(swarm)
    swarm.m.create_file(CONFIG, {"name": "app.conf"}, b"port=80\n")
    swarm.web(replicas=1, secrets=[FileRef(source="db_pass")], configs=[FileRef(source="app.conf")])
    swarm.tick()
    [task] = swarm.current()
    swarm.data_key = DataKey.new()
    with caplog.at_level(logging.ERROR):
        [t] = swarm.reopen().desired_state(task.node_id).tasks
    assert [f.kind for f in t.spec.files] == [CONFIG]  # the rest of the state still comes
    assert "sealed with data key" in caplog.text
    assert base64.b64encode(VALUE).decode() not in caplog.text


def test_rm_of_a_secret_in_use_names_the_services_as_swarmkit_does(swarm):
    create(swarm)
    swarm.web(replicas=1, secrets=[FileRef(source="db_pass")])
    with pytest.raises(InvalidArgument) as err:
        swarm.m.remove_file(SECRET, "db_pass")
    assert str(err.value) == "secret 'db_pass' is in use by the following service: web"
    swarm.m.remove_service("web")
    swarm.m.remove_file(SECRET, "db_pass")
    assert swarm.m.list_files(SECRET) == []


def test_rm_names_every_service_using_it(swarm):
    swarm.m.create_file(CONFIG, {"name": "app.conf"}, b"x")
    swarm.web(replicas=1, configs=[FileRef(source="app.conf")])
    swarm.m.create_service(
        swarm.m.get_service("web").spec.model_copy(update={"name": "api", "networks": []})
    )
    with pytest.raises(
        InvalidArgument, match="^config .app.conf. is in use by the following services: api, web$"
    ):
        swarm.m.remove_file(CONFIG, "app.conf")


def test_a_service_naming_an_unknown_secret_is_refused(swarm):
    with pytest.raises(NotFound, match="^secret not found: nope$"):
        swarm.web(replicas=1, secrets=[FileRef(source="nope")])
    assert swarm.m.list_services() == []


def test_adding_a_secret_rolls_the_tasks(swarm):
    service = swarm.web(replicas=1)
    create(swarm)
    spec = service.spec.model_copy(update={"secrets": [FileRef(source="db_pass")]})
    updated = swarm.m.update_service("web", spec)
    assert updated.task_key() != service.task_key()
    assert updated.spec.secrets[0].id == swarm.m.get_file(SECRET, "db_pass").id


def test_a_secret_that_does_not_open_is_logged_once_not_at_every_change(swarm, caplog):
    create(swarm)
    swarm.web(replicas=1, secrets=[FileRef(source="db_pass")])
    swarm.tick()
    [task] = swarm.current()
    swarm.data_key = DataKey.new()
    manager = swarm.reopen()
    with caplog.at_level(logging.ERROR):
        manager.desired_state(task.node_id)
        manager.heartbeat(task.node_id, [])  # a write: the next state is built anew
        swarm.m.update_node(task.node_id, label_add=["x=1"])
        manager.desired_state(task.node_id)
    assert caplog.text.count("cannot be given to its tasks") == 1


def test_the_api_shows_a_secret_without_its_sealed_value_and_a_config_with_its_data(swarm):
    secret = view(create(swarm))
    assert set(secret) == {"id", "spec", "version", "created_at", "updated_at"}
    config = view(swarm.m.create_file(CONFIG, {"name": "app.conf"}, b"port=80\n"))
    assert base64.b64decode(config["data"]) == b"port=80\n"
