"""The visualizer on a real 3-node lab, seen by a real headless browser.

Debian's chromium + chromedriver, driven by selenium, run INSIDE the lab client's
namespace (`ip netns exec`), as a user's laptop on the underlay would: the page is
loaded once from the manager's underlay address and must redraw by itself as tasks
come. The browser runs as a child process (this file run as a script) answering one
JSON line per command, so the test can act on the swarm between looks. The last
look is saved in the test's tmp dir, or where VXSWARM_SCREENSHOT says (to refresh
docs/visualizer.png): a test run leaves the checkout as it found it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netagent.lab.driver import VXSWARM, SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_ENV = "VXSWARM_SCREENSHOT"
MANAGER_URL = "http://192.168.56.11:9323"  # the read-only view port


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} missing: apt-get install chromium chromium-driver")
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


# -- the browser, in the lab client's namespace --------------------------------------


class Browser:
    """The test's side of the browser process: one command, one JSON answer."""

    def __init__(self, proc: subprocess.Popen[str], log: Path):
        self.proc = proc
        self.log = log
        self.ask_timeout = 60.0

    def _read(self, timeout: float) -> Any:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"browser gave no answer; its log:\n{self.log_tail()}")
        return json.loads(line)

    def _send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def ask(self, op: str, **args: Any) -> Any:
        self._send(op, **args)
        return self._read(self.ask_timeout)

    def quit(self) -> None:
        """Ask the browser to close (no answer); it also ends when its stdin closes."""
        with contextlib.suppress(OSError, ValueError):
            self._send("quit")
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]

    def look(self) -> dict[str, Any]:
        return self.ask("look")

    def wait_until(self, what: str, check: Callable[[dict], bool], timeout: float = 30) -> dict:
        """Look until `check(page)` holds; the page never reloads meanwhile."""
        return wait_for(what, lambda: (page := self.look()) and check(page) and page, timeout)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextlib.contextmanager
def browser_on(lab: SwarmLab, url: str, log: Path) -> Iterator[Browser]:
    """A headless Chromium in the lab client's namespace with `url` loaded."""
    argv = ["ip", "netns", "exec", lab.node_ns("client"), sys.executable, __file__, url]
    env = {**os.environ, "SE_AVOID_STATS": "true"}  # selenium: no usage reports (no network)
    with log.open("w") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            env=env, start_new_session=True,
        )  # fmt: skip
    browser = Browser(proc, log)
    try:
        assert browser._read(90) == {"loaded": url}
        yield browser
    finally:
        browser.quit()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: chromium and chromedriver
            proc.wait()


@pytest.fixture
def browser(lab, tmp_path) -> Iterator[Browser]:
    with browser_on(lab, f"{MANAGER_URL}/visualizer", tmp_path / "browser.log") as b:
        yield b


# -- what the page shows -------------------------------------------------------------


def cards(page: dict, service: str) -> dict[str, dict]:
    """task name -> its card (with the node column it sits in), for one service."""
    return {
        t["task"]: {**t, "node": n["node"]}
        for n in page["nodes"]
        for t in n["tasks"]
        if t["service"] == service
    }


def placement(page: dict, service: str) -> dict[str, tuple[str, str]]:
    return {name: (c["node"], c["state"]) for name, c in cards(page, service).items()}


def name(task: dict) -> str:
    return f"{task['service_name']}.{task['slot']}"


def expected(lab: SwarmLab, tasks: list[dict]) -> dict[str, tuple[str, str]]:
    hosts = lab.hostnames()
    return {name(t): (hosts[t["node_id"]], t["status"]["state"]) for t in tasks}


def test_page_shows_every_node_task_and_network_and_a_scaled_up_task_appears(
    lab, browser, tmp_path
):
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "visualizer.png").resolve()
    page = browser.wait_until("three node columns", lambda p: len(p["nodes"]) == 3)
    assert page["status"] == "live", page
    columns = {n["node"]: n for n in page["nodes"]}
    assert set(columns) == set(lab.nodes)
    for node in lab.json("node", "ls"):
        head = columns[node["hostname"]]["head"]
        for field in ("role", "availability", "status", "addr"):
            assert node[field] in head, (field, head)
    webnet = lab.json("network", "inspect", "webnet")[0]
    nets = {n["network"]: n for n in page["networks"]}
    assert nets["webnet"]["vni"] == str(webnet["vni"]) == "4097"
    assert nets["ingress"]["vni"] == "4096"

    with lab.service("web", "--network", "webnet", "--publish", "8080:80", "whoami",
                     replicas=2) as tasks:  # fmt: skip
        page = browser.wait_until(
            "both web tasks running in their nodes' columns",
            lambda p: placement(p, "web") == expected(lab, tasks),
        )
        nid = webnet["id"]
        for t in tasks:
            (addr,) = [a["address"] for a in t["attachments"] if a["network_id"] == nid]
            card = cards(page, "web")[name(t)]
            assert f"webnet {addr}" in card["ips"], card
            assert "whoami" in card["text"] and t["id"][:12] in card["text"]
        vip = lab.json("service", "inspect", "web")[0]["vips"][nid]
        (webnet_chip,) = [n for n in page["networks"] if n["network"] == "webnet"]
        assert f"web VIP {vip}" in webnet_chip["text"]

        lab.run("service", "scale", "web=3", check=True)
        now = lab.converge("web", 3)
        (new,) = [t for t in now if t["id"] not in {t["id"] for t in tasks}]
        page = browser.wait_until(
            f"{name(new)} to appear, running, without a reload",
            lambda p: placement(p, "web") == expected(lab, now),
        )
        assert page["loads"] == 1, "the page was reloaded"
        assert any("*:8080->80/tcp" in s for s in page["services"])
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.ask("screenshot", path=str(shot)) == {"saved": str(shot)}
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    browser.wait_until("the removed service's cards to go", lambda p: not cards(p, "web"))


def test_visualizer_command_prints_the_managers_underlay_url(lab):
    res = lab.lab("ssh", "client", "vxswarm visualizer", check=True)
    assert res.out.strip() == f"{MANAGER_URL}/visualizer"
    refused = lab.run("visualizer", node="worker1")
    assert refused.code == 1
    assert "Worker nodes can't be used to view or modify cluster state" in refused.err


def test_local_port_forwarder_is_not_shadowed_by_the_mesh_on_the_same_port(lab):
    """`visualizer --port 8080` on manager1 while a service publishes 8080 in the mesh:
    127.0.0.1:8080 is the page, the node's underlay 8080 is the service."""
    ns = lab.node_ns("manager1")
    with lab.service("mesh", "--network", "webnet", "--publish", "8080:80", "whoami"):
        env = {**lab.env, "VXSWARM_HOST": lab.socket("manager1")}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *VXSWARM, "visualizer", "--port", "8080"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            line = proc.stdout.readline() if ready else ""
            assert line.startswith("http://127.0.0.1:8080/visualizer"), line
            assert f"forwarding to {MANAGER_URL}/visualizer" in line

            def curl(url: str) -> tuple[int, str]:
                """(HTTP status, body) of a GET made inside manager1's namespace."""
                res = subprocess.run(
                    ["ip", "netns", "exec", ns, "curl", "-sS", "-m", "5", "-w", "\n%{http_code}",
                     url],
                    capture_output=True, text=True, timeout=30,
                )  # fmt: skip
                body, _, code = res.stdout.rpartition("\n")
                return int(code or 0), body

            code, body = curl("http://127.0.0.1:8080/visualizer")
            assert code == 200 and "<title>vxswarm visualizer</title>" in body
            code, body = curl("http://127.0.0.1:8080/visualizer/state")
            assert code == 200 and "mesh" in {s["name"] for s in json.loads(body)["services"]}
            code, body = curl("http://192.168.56.11:8080/")  # the mesh: a whoami task answers
            assert code == 200 and body.startswith("I am "), body
            # Only the page goes through: the rest of the manager's API does not.
            assert curl("http://127.0.0.1:8080/v1/nodes")[0] == 404
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the browser process (this file run as a script, inside the client namespace) -----

LOOK_SCRIPT = """
const text = (e) => e ? e.innerText : "";
return {
  status: document.getElementById("status").dataset.status,
  loads: Number(sessionStorage.getItem("loads")),
  nodes: [...document.querySelectorAll("[data-node]")].map((n) => ({
    node: n.dataset.node,
    head: text(n.querySelector(".node-head")),
    tasks: [...n.querySelectorAll("[data-task]")].map((t) => ({
      task: t.dataset.task, service: t.dataset.service, state: t.dataset.state,
      text: text(t), ips: [...t.querySelectorAll(".ip")].map((i) => text(i).replace(/\\s+/g, " ")),
    })),
  })),
  networks: [...document.querySelectorAll("[data-network]")].map((n) => ({
    network: n.dataset.network, vni: n.dataset.vni, text: text(n).replace(/\\s+/g, " "),
  })),
  services: [...document.querySelectorAll(".service")].map(text),
};
"""


def browse(url: str) -> None:
    """Load `url` in headless Chromium; answer `look`, `screenshot` and `quit` commands
    read from stdin, one JSON line each."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="vxswarm-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,720", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        # Count loads in the tab's session storage: a reload would show as 2.
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": "sessionStorage.setItem('loads', "
                       "String(Number(sessionStorage.getItem('loads')) + 1));"},
        )  # fmt: skip
        driver.get(url)
        print(json.dumps({"loaded": url}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            if cmd["op"] == "look":
                answer = driver.execute_script(LOOK_SCRIPT)
            elif cmd["op"] == "screenshot":
                driver.save_screenshot(cmd["path"])
                answer = {"saved": cmd["path"]}
            else:
                answer = {"error": f"unknown op {cmd['op']!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    browse(sys.argv[1])
