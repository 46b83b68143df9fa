"""Pure logic of the built-in workloads: image names, argv, environment, parsers."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from netagent.contract.desired import TaskAssignment, TaskSpec
from netagent.contract.errors import InvalidArgument
from netagent.contract.images import check_image
from netagent.tasks.workloads import (
    DEFAULT_PATH,
    HOST_DEFAULT_COMMAND,
    environment,
    full_image,
    httpserver,
    resolve,
    slowreply,
    whoami,
)
from tests import factories

TASK_ID = "3f2a9c1b7d4e5f60718293a4b5c6d7e8"


def make_task(image: str = "whoami", command=(), env=()) -> TaskAssignment:
    return factories.task(TASK_ID, service_id="svc123", image=image, command=command, env=env)


# --- check_image -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("whoami", ("whoami", "latest")),
        ("nginx", ("whoami", "latest")),
        ("nginx:1.25-alpine", ("whoami", "1.25-alpine")),
        ("slowreply:v2", ("slowreply", "v2")),
        ("host", ("host", "latest")),
        ("alpine:3.19", ("host", "3.19")),
        ("busybox:_x.y", ("host", "_x.y")),
    ],
)
def test_check_image_maps_names_and_aliases_to_workload_and_tag(image, expected):
    assert check_image(image) == expected


@pytest.mark.parametrize("image", ["foo", "", "NGINX", "library/nginx", " whoami", "nginx@sha256"])
def test_check_image_rejects_unknown_names_listing_the_known_ones(image):
    with pytest.raises(InvalidArgument) as err:
        check_image(image)
    assert str(err.value) == (
        f"unknown image {image!r}: expected one of alpine, busybox, host, nginx, slowreply, "
        "whoami (optionally :TAG)"
    )


@pytest.mark.parametrize(
    "image", ["whoami:", "whoami:-x", "whoami:.x", "whoami:a b", "nginx:a:b", "whoami:v1\n"]
)
def test_check_image_rejects_bad_tags_naming_the_tag(image):
    tag = image.partition(":")[2]
    with pytest.raises(InvalidArgument, match=re.escape(f"invalid tag {tag!r} in image {image!r}")):
        check_image(image)


def test_check_image_accepts_a_tag_of_128_characters_but_not_129():
    assert check_image("alpine:" + "a" * 128) == ("host", "a" * 128)
    with pytest.raises(InvalidArgument):
        check_image("alpine:" + "a" * 129)


def test_full_image_keeps_the_users_name_and_makes_the_tag_explicit():
    assert full_image("nginx") == "nginx:latest"
    assert full_image("alpine:3.19") == "alpine:3.19"


# --- resolve -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "module"),
    [("whoami", "whoami"), ("nginx:1", "whoami"), ("slowreply", "slowreply")],
)
def test_resolve_runs_server_workloads_with_the_agents_interpreter(image, module):
    task = make_task(image)
    assert resolve(task.spec, task) == [sys.executable, "-m", f"netagent.tasks.workloads.{module}"]


def test_resolve_passes_flag_only_commands_to_the_default_program():
    task = make_task("whoami", ["--port", "8000"])
    assert resolve(task.spec, task) == [
        sys.executable,
        "-m",
        "netagent.tasks.workloads.whoami",
        "--port",
        "8000",
    ]


def test_resolve_lets_a_command_replace_the_default_program():
    task = make_task("nginx", ["ping", "-c1", "10.0.0.3"])
    assert resolve(task.spec, task) == ["ping", "-c1", "10.0.0.3"]


def test_resolve_runs_the_command_of_a_host_image():
    task = make_task("alpine", ["sleep", "1000"])
    assert resolve(task.spec, task) == ["sleep", "1000"]


def test_resolve_host_image_without_command_exits_at_once_like_docker_alpine():
    task = make_task("busybox")
    assert resolve(task.spec, task) == list(HOST_DEFAULT_COMMAND) == ["sh", "-c", "exit 0"]


def test_resolve_uses_the_given_spec_not_the_tasks_own():
    task = make_task("whoami")
    spec = TaskSpec(image="alpine", command=("true",))
    assert resolve(spec, task) == ["true"]


@pytest.mark.parametrize(
    ("command", "match"),
    [(["", "x"], "expected a non-empty program name"), (["echo", "a\0b"], "NUL")],
)
def test_resolve_rejects_commands_that_cannot_be_executed(command, match):
    task = make_task("alpine", command)
    with pytest.raises(InvalidArgument, match=match):
        resolve(task.spec, task)


def test_resolve_rejects_unknown_images():
    task = make_task("redis")
    with pytest.raises(InvalidArgument, match="unknown image 'redis'"):
        resolve(task.spec, task)


# --- environment -------------------------------------------------------------------------


def test_environment_is_clean_and_names_the_task():
    env = environment(make_task("nginx"))
    assert env == {
        "PATH": DEFAULT_PATH,
        "HOME": "/root",
        "HOSTNAME": TASK_ID[:12],
        "VXSWARM_TASK_NAME": "web.1",
        "VXSWARM_TASK_ID": TASK_ID,
        "VXSWARM_SERVICE_NAME": "web",
        "VXSWARM_IMAGE": "nginx:latest",
    }


def test_environment_lets_service_env_override_defaults_but_not_identity():
    env = environment(
        make_task(
            "whoami:v1",
            env=[("PATH", "/opt/bin"), ("GREETING", "hi=there"), ("VXSWARM_TASK_NAME", "fake")],
        )
    )
    assert env["PATH"] == "/opt/bin"
    assert env["GREETING"] == "hi=there"
    assert env["VXSWARM_TASK_NAME"] == "web.1"
    assert env["VXSWARM_IMAGE"] == "whoami:v1"


@pytest.mark.parametrize(("key", "value"), [("", "x"), ("A=B", "x"), ("A", "x\0y"), ("A\0", "x")])
def test_environment_rejects_variables_a_process_cannot_receive(key, value):
    with pytest.raises(InvalidArgument, match=re.escape(f"invalid environment variable {key!r}")):
        environment(make_task(env=[(key, value)]))


# --- HTTP head parsing and rendering -----------------------------------------------------


def test_parse_head_reads_request_line_and_headers():
    req = httpserver.parse_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x:80\r\nX-Y:  z ", "10.0.0.5:4000")
    assert (req.method, req.target, req.version) == ("GET", "/a?b=1", "HTTP/1.1")
    assert req.headers == (("Host", "x:80"), ("X-Y", "z"))
    assert req.header("host") == "x:80"
    assert req.header("absent") is None
    assert req.remote == "10.0.0.5:4000"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"GET /",
        b"GET / HTTP/2.0",
        b"get / HTTP/1.1",
        b"GET  HTTP/1.1",
        b"GET / HTTP/1.1\r\nno colon here",
        b"GET / HTTP/1.1\r\nbad name: x",
        b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (httpserver.MAX_HEADERS + 1),
    ],
)
def test_parse_head_rejects_malformed_heads(head):
    with pytest.raises(httpserver.BadRequest):
        httpserver.parse_head(head.rstrip(b"\r\n"), "1.2.3.4:5")


def test_parse_head_fuzzed_input_either_parses_or_raises_bad_request():
    rng = random.Random(1234)
    alphabet = b"GETPOST /HTP1.:\r\n \x00\xffab-"
    for _ in range(3000):
        head = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        with contextlib.suppress(httpserver.BadRequest):
            httpserver.parse_head(head, "r")


def test_render_response_has_length_and_closes_the_connection():
    resp = httpserver.Response(200, b"hello\n", headers=(("X-A", "1"),))
    assert httpserver.render_response(resp) == (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n"
        b"Connection: close\r\nX-A: 1\r\n\r\nhello\n"
    )
    assert httpserver.render_response(resp, head_only=True).endswith(b"X-A: 1\r\n\r\n")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000000Z"),
        (1_795_341_600_123_456_789, "2026-11-22T10:00:00.123456789Z"),
        (1_795_341_600_000_000_001, "2026-11-22T10:00:00.000000001Z"),
    ],
)
def test_rfc3339_ns_formats_utc_with_nanoseconds(ns, text):
    assert httpserver.rfc3339_ns(ns) == text


# --- slowreply ---------------------------------------------------------------------------


def test_slowreply_waits_the_delay_and_reports_received_and_replied_times():
    times = iter([1_795_341_600_000_000_001, 1_795_341_601_000_000_002])
    slept: list[float] = []
    app = slowreply.make_app(
        argparse.Namespace(delay=1.0), clock=lambda: next(times), sleep=slept.append
    )
    resp = app(httpserver.parse_head(b"GET / HTTP/1.1", "r"))
    assert slept == [1.0]
    assert resp.status == 200
    assert resp.body == b"2026-11-22T10:00:00.000000001Z,2026-11-22T10:00:01.000000002Z\n"


@pytest.mark.parametrize("delay", ["-1", "abc", "nan", "4000"])
def test_slowreply_rejects_a_bad_delay_naming_it(delay, capsys):
    with pytest.raises(SystemExit) as exc:
        slowreply.main(["--delay", delay])
    assert exc.value.code == 2
    assert f"invalid delay {delay!r}: expected 0..3600 seconds" in capsys.readouterr().err


def test_workload_rejects_a_port_out_of_range(capsys):
    with pytest.raises(SystemExit):
        whoami.main(["--port", "70000"])
    assert "invalid --port 70000: expected 0..65535" in capsys.readouterr().err


# --- whoami ------------------------------------------------------------------------------


def test_whoami_render_lists_identity_addresses_and_request():
    text = whoami.render(
        hostname="3f2a9c1b7d4e",
        task="web.1",
        image="whoami:latest",
        ips=["10.0.0.3", "172.18.0.3"],
        remote="10.0.0.5:43122",
        request_line="GET / HTTP/1.1",
        headers=[("Host", "web")],
    )
    assert text == (
        "I am 3f2a9c1b7d4e\nTask: web.1\nImage: whoami:latest\nIP: 10.0.0.3\nIP: 172.18.0.3\n"
        "RemoteAddr: 10.0.0.5:43122\nGET / HTTP/1.1\nHost: web\n"
    )


def _nlmsg(mtype: int, body: bytes) -> bytes:
    length = 16 + len(body)
    pad = b"\0" * ((4 - length % 4) % 4)
    return struct.pack("=IHHII", length, mtype, 2, 1, 0) + body + pad


def _rtattr(atype: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    pad = b"\0" * ((4 - length % 4) % 4)
    return struct.pack("=HH", length, atype) + payload + pad


def _newaddr(ip: str, label: str, scope: int = 0, index: int = 2) -> bytes:
    body = struct.pack("=BBBBI", socket.AF_INET, 24, 0, scope, index)
    body += _rtattr(whoami.IFA_ADDRESS, socket.inet_aton(ip))
    body += _rtattr(whoami.IFA_LOCAL, socket.inet_aton(ip))
    body += _rtattr(whoami.IFA_LABEL, label.encode() + b"\0")
    return _nlmsg(whoami.RTM_NEWADDR, body)


def test_parse_addr_dump_keeps_non_loopback_ipv4_and_sees_done():
    data = (
        _newaddr("127.0.0.1", "lo", scope=whoami.RT_SCOPE_HOST, index=1)
        + _newaddr("10.0.0.3", "eth0")
        + _newaddr("10.255.0.9", "lo")
        + _newaddr("172.18.0.3", "eth1", index=3)
        + _nlmsg(whoami.NLMSG_DONE, b"\0\0\0\0")
    )
    assert whoami.parse_addr_dump(data) == ([("eth0", "10.0.0.3"), ("eth1", "172.18.0.3")], True)


def test_parse_addr_dump_without_done_asks_for_more():
    assert whoami.parse_addr_dump(_newaddr("10.0.0.3", "eth0")) == ([("eth0", "10.0.0.3")], False)


def test_parse_addr_dump_reports_netlink_errors():
    with pytest.raises(ValueError, match="netlink error 1"):
        whoami.parse_addr_dump(_nlmsg(whoami.NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16))


def test_parse_addr_dump_fuzzed_input_either_parses_or_raises_value_error():
    rng = random.Random(4321)
    good = _newaddr("10.0.0.3", "eth0") + _newaddr("172.18.0.3", "eth1")
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(0, len(data))]
        try:
            found, _done = whoami.parse_addr_dump(bytes(data))
        except ValueError:
            continue
        assert all(isinstance(ip, str) and ip.count(".") == 3 for _label, ip in found)


# --- scripts/bootstrap.sh ----------------------------------------------------------------

BOOTSTRAP = Path(__file__).resolve().parents[5] / "scripts" / "bootstrap.sh"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "unknown mode '': expected demo, test, install, node or vms"),
        (["deploy"], "unknown mode 'deploy': expected demo, test, install, node or vms"),
        (
            ["test", "now"],
            "unexpected argument 'now': expected only one of demo, test, install, node or vms",
        ),
    ],
)
def test_bootstrap_rejects_bad_arguments_before_touching_anything(args, message, tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["bash", str(BOOTSTRAP), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "VXSWARM_VENV": str(venv), "VXSWARM_BIN_LINK": str(tmp_path / "vx")},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"bootstrap: {message}")
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
