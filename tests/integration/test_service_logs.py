"""`vxswarm service logs` on a real 3-node lab: real task processes print, their shims
write json-file lines on their own nodes, agents stream them over mutual TLS on 2377 to
the manager, which merges them; the CLI prints docker's prefix."""

from __future__ import annotations

import re
import time

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for
from netagent.tasks.logs import parse_time_ns
from tests.integration.streams import Streaming

pytestmark = [pytest.mark.root, pytest.mark.lab]
#: `web.1.0123456789ab@worker1    | text`, as docker prints a line.
LINE_RE = re.compile(
    r"^(?P<name>[\w-]+)\.(?P<slot>\d+)\.(?P<id>[0-9a-f]{12})@(?P<node>\S+?) *    \| (?P<text>.*)$"
)
SPREAD = ("--replicas-max-per-node", "1")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def logs(lab: SwarmLab, *args: str) -> tuple[list[str], list[str]]:
    res = lab.run("service", "logs", *args, check=True)
    return res.out.splitlines(), res.err.splitlines()


def parsed(lines: list[str]) -> list[dict]:
    found = [LINE_RE.match(ln) for ln in lines]
    assert all(found), f"not docker's prefix: {lines}"
    return [m.groupdict() for m in found if m]


def test_a_service_on_three_nodes_shows_every_tasks_lines_with_docker_prefix(lab):
    script = "echo hello from $(hostname); echo trouble >&2; sleep 1000"
    with lab.service("web", *SPREAD, "alpine", "sh", "-c", script, replicas=3) as tasks:
        where = {t["id"][:12]: lab.hostnames()[t["node_id"]] for t in tasks}
        assert sorted(where.values()) == ["manager1", "worker1", "worker2"]
        out, err = wait_for(
            "every task's two lines",
            lambda: (r := logs(lab, "web")) and len(r[0]) == 3 and len(r[1]) == 3 and r,
        )
        lines = parsed(out)
        # Each task said its own hostname (its id), on the node it runs on.
        assert {(m["id"], m["node"], m["text"]) for m in lines} == {
            (tid, node, f"hello from {tid}") for tid, node in where.items()
        }
        assert {m["name"] for m in lines} == {"web"}
        # stderr lines go to stderr, prefixed alike.
        assert {(m["id"], m["text"]) for m in parsed(err)} == {(tid, "trouble") for tid in where}
        # One task by its name; the full id with --no-trunc; none with --no-task-ids.
        web2 = next(t for t in tasks if t["slot"] == 2)
        out, _ = logs(lab, "--no-trunc", "web.2")
        assert out == [
            f"web.2.{web2['id']}@{where[web2['id'][:12]]}    | hello from {web2['id'][:12]}"
        ]
        out, _ = logs(lab, "--no-task-ids", "web.2")
        assert out == [f"web.2@{where[web2['id'][:12]]}    | hello from {web2['id'][:12]}"]


def test_tail_keeps_the_last_lines_of_each_task_and_raw_prints_them_bare(lab):
    script = "for i in 1 2 3 4 5; do echo line$i; done; sleep 1000"
    with lab.service("counted", *SPREAD, "alpine", "sh", "-c", script, replicas=2):
        wait_for("10 lines", lambda: len(logs(lab, "counted")[0]) == 10)
        out, _ = logs(lab, "--tail", "2", "counted")
        lines = parsed(out)
        assert sorted(m["text"] for m in lines) == ["line4", "line4", "line5", "line5"]
        assert len({m["id"] for m in lines}) == 2
        out, _ = logs(lab, "--raw", "-n", "1", "counted")
        assert out == ["line5", "line5"]
        assert logs(lab, "--tail", "0", "counted")[0] == []
        bad = lab.run("service", "logs", "--tail", "-3", "counted")
        assert bad.code != 0
        assert "invalid value '-3' for --tail" in bad.err


def test_timestamps_are_the_lines_times_and_since_selects_by_them(lab):
    script = "echo first; sleep 2; echo second; sleep 1000"
    began = time.time_ns()
    with lab.service("timed", "alpine", "sh", "-c", script):
        wait_for("both lines", lambda: len(logs(lab, "timed")[0]) == 2)
        ended = time.time_ns()
        out, _ = logs(lab, "-t", "timed")
        stamps = [ln.split(" ", 1) for ln in out]
        assert [parsed([rest])[0]["text"] for _, rest in stamps] == ["first", "second"]
        # RFC 3339 with nanoseconds, as docker prints them, and the lines' real times.
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", s) for s, _ in stamps)
        first, second = (parse_time_ns(s) for s, _ in stamps)
        assert began <= first < second <= ended
        assert second - first >= 2_000_000_000  # the task slept 2 s between them
        # --since a time between the two lines (RFC 3339 and Unix forms) keeps the second.
        between = first + 1_000_000_000
        secs, nanos = divmod(between, 1_000_000_000)
        rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
        for since in (rfc, f"{secs}.{nanos:09d}"):
            out, _ = logs(lab, "--since", since, "timed")
            assert [parsed([ln])[0]["text"] for ln in out] == ["second"]
        # Relative: counted back from now.
        assert len(logs(lab, "--since", "1h", "timed")[0]) == 2
        bad = lab.run("service", "logs", "--since", "yesterday", "timed")
        assert bad.code != 0 and "invalid value 'yesterday' for --since" in bad.err


def test_follow_shows_tasks_that_start_later_as_a_failing_task_restarts(lab):
    script = "echo hello from $(hostname); sleep 1; exit 1"
    args = ("--restart-delay", "500ms", "alpine", "sh", "-c", script)
    with lab.service("crash", *args, converge=False):
        lab.wait_for("a first task", lambda: lab.tasks("crash"))
        follower = Streaming(lab, "service", "logs", "-f", "crash")
        try:
            known = {t["id"][:12] for t in lab.tasks("crash")}
            # Lines of tasks that did not exist when `logs -f` began: it follows.
            later = lambda: {  # noqa: E731
                m["id"] for m in parsed(list(follower.lines)) if m["id"] not in known
            }
            new = wait_for(
                "two tasks started after logs -f", lambda: len(later()) >= 2 and later(), timeout=60
            )
            assert follower.proc.poll() is None  # still following
        finally:
            err = follower.stop()
        assert "Traceback" not in err
        lines = parsed(follower.lines)
        # Every line is its task's own (the hostname is the task id), none twice.
        assert all(m["text"] == f"hello from {m['id']}" for m in lines)
        assert len({m["id"] for m in lines}) == len(lines)
        assert new <= {m["id"] for m in lines}


def test_an_unknown_service_or_task_is_named(lab):
    res = lab.run("service", "logs", "nosuch")
    assert res.code == 1
    assert res.err.strip() == "Error: no such task or service: nosuch"
    assert res.out == ""


def test_a_node_that_cannot_be_reached_is_a_warning_and_the_others_still_come(lab):
    script = "echo up on $(hostname); sleep 1000"
    with lab.service("spread", *SPREAD, "alpine", "sh", "-c", script, replicas=3):
        wait_for("three lines", lambda: len(logs(lab, "spread")[0]) == 3)
        lab.lab("stop", "worker2", check=True)
        try:
            res = lab.run("service", "logs", "spread", check=True)
            nodes = sorted(m["node"] for m in parsed(res.out.splitlines()))
            assert nodes == ["manager1", "worker1"]
            warning = [ln for ln in res.err.splitlines() if ln.startswith("WARNING:")]
            assert len(warning) == 1 and "from worker2" in warning[0], res.err
        finally:
            lab.lab("start", "worker2", check=True)
            lab.wait_ready(timeout=60)
