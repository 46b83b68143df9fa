// vxswarm visualizer: polls the manager's /visualizer/state about once a second and
// redraws only when the answer changed. Plain DOM (textContent, never innerHTML: names
// and images come from users). Every node column and task card carries data-*
// attributes (data-node, data-task, data-state) for scripts and tests.
"use strict";

const STATE_URL = "/visualizer/state";
const POLL_MS = 1000;
let lastText = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// One stable colour per service, from its name.
function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

function taskCard(t) {
  const card = el("div", "task");
  card.dataset.task = t.name;
  card.dataset.service = t.service;
  card.dataset.state = t.state;
  card.dataset.taskId = t.id;
  card.style.borderLeftColor = `hsl(${hue(t.service)} 65% 45%)`;
  const head = el("div", "task-head");
  head.append(el("span", "task-name", t.name), el("span", `state state-${t.state}`, t.state));
  card.append(head, el("div", "task-image", t.image), el("div", "muted", t.id.slice(0, 12)));
  for (const ip of t.ips) {
    const row = el("div", "ip");
    row.append(el("span", "ip-net", ip.network), el("span", "ip-addr", ip.address));
    card.append(row);
  }
  if (t.desired_state !== "running") card.append(el("div", "muted", `→ ${t.desired_state}`));
  if (t.message && t.state !== "running") card.append(el("div", "task-msg", t.message));
  return card;
}

function nodeColumn(n) {
  const col = el("div", `node node-${n.status} avail-${n.availability}`);
  col.dataset.node = n.hostname;
  col.dataset.status = n.status;
  const head = el("div", "node-head");
  head.append(el("div", "node-name", n.hostname + (n.leader ? " ★" : "")));
  head.append(el("div", "node-meta", `${n.role} · ${n.availability} · ${n.status}`));
  head.append(el("div", "muted", n.addr));
  col.append(head);
  for (const t of n.tasks) col.append(taskCard(t));
  return col;
}

function networksTable(networks, services) {
  const box = el("div", "networks");
  for (const n of networks) {
    const chip = el("div", n.ingress ? "network ingress" : "network");
    chip.dataset.network = n.name;
    chip.dataset.vni = String(n.vni);
    chip.append(el("span", "net-name", n.name), el("span", "net-vni", `VNI ${n.vni}`));
    chip.append(el("span", "muted", n.subnet));
    for (const v of n.vips) chip.append(el("span", "vip", `${v.service} VIP ${v.vip}`));
    box.append(chip);
  }
  const svc = el("div", "services");
  for (const s of services) {
    const ports = s.ports.length ? ` ${s.ports.join(" ")}` : "";
    const chip = el("span", "service", `${s.name} ${s.running}/${s.desired}${ports}`);
    chip.dataset.service = s.name;
    chip.style.borderColor = `hsl(${hue(s.name)} 65% 45%)`;
    svc.append(chip);
  }
  return [box, svc];
}

function render(state) {
  document.getElementById("cluster").textContent =
    `cluster ${state.cluster_id.slice(0, 12)} · revision ${state.revision}`;
  document.body.dataset.revision = String(state.revision);
  document.getElementById("networks").replaceChildren(
    ...networksTable(state.networks, state.services));
  document.getElementById("nodes").replaceChildren(...state.nodes.map(nodeColumn));
  const pending = document.getElementById("unassigned");
  pending.replaceChildren();
  if (state.unassigned.length) {
    pending.append(el("h2", "", "not placed"), ...state.unassigned.map(taskCard));
  }
}

function setStatus(kind, text) {
  const s = document.getElementById("status");
  s.dataset.status = kind;
  s.textContent = text;
}

async function poll() {
  try {
    const resp = await fetch(STATE_URL, { cache: "no-store" });
    const text = await resp.text();
    if (!resp.ok) {
      let msg = `HTTP ${resp.status}`;
      try { msg = JSON.parse(text).error.message; } catch (_) { /* not our JSON */ }
      throw new Error(msg);
    }
    if (text !== lastText) {
      render(JSON.parse(text));
      lastText = text;
    }
    setStatus("live", `live · ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setStatus("error", `no answer from the manager: ${err.message}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
