// netlab's map: Docker networks, their containers and hand-made legs, and the pings
// between them, from the daemon's live map (/v1/map as Server-Sent Events, a few maps a
// second however many packets flow). Boxes are redrawn only when the topology changes,
// in an order that depends on names alone, so nothing jumps; edges are updated in place.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const state = {
  map: null,
  topoKey: "",
  selected: null,
  // For tests and the curious: maps received and the time the latest took to draw.
  updates: 0,
  lastDrawMs: 0,
};
window.netlabMap = state;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c);
  }
  return e;
}

// ---- the status line -------------------------------------------------------------

function showStatus(s, connected) {
  const st = $("status");
  st.dataset.connected = String(connected);
  if (!connected) {
    st.textContent = "not connected to the daemon: retrying…";
    return;
  }
  const parts = [
    `${s.events_per_s} events/s`,
    `${s.lost_events} lost`,
    s.sample > 1 ? `sampling 1 in ${s.sample}` : "every packet sampled",
    `${s.attached_interfaces} interfaces attached`,
    s.docker ? "Docker engine connected" : "no Docker engine",
  ];
  if (s.read_only) parts.push("read-only");
  st.textContent = parts.join(" · ");
}

// ---- the boxes -------------------------------------------------------------------

function topoKeyOf(m) {
  // The edges' ends that are no container need a place too.
  const addresses = [];
  for (const e of m.edges) {
    for (const [name, ip, net] of [[e.src, e.src_ip, e.src_network], [e.dst, e.dst_ip, e.dst_network]]) {
      if (name === ip) addresses.push(`${net || ""}|${ip}`);
    }
  }
  addresses.sort();
  return JSON.stringify([m.networks, m.bridges, m.overlays || [], [...new Set(addresses)]]);
}

function drawBoxes(m) {
  const box = $("map");
  box.replaceChildren();
  const addresses = new Map();
  for (const e of m.edges) {
    for (const [name, ip, net] of [[e.src, e.src_ip, e.src_network], [e.dst, e.dst_ip, e.dst_network]]) {
      if (name !== ip) continue;
      const k = net || "";
      if (!addresses.has(k)) addresses.set(k, new Set());
      addresses.get(k).add(ip);
    }
  }
  for (const n of m.networks) {
    const members = el("div", { class: "members" });
    for (const c of n.containers) {
      members.append(
        el("div", { class: "container", "data-container": c.name, title: `${c.name} ${c.iface}` },
          el("strong", {}, c.name),
          el("span", { class: "meta" }, `${c.iface} ${c.ips.join(" ")}`),
          c.host_veth ? el("div", { "data-iface": c.host_veth, "data-role": "container-veth" }, `⇄ ${c.host_veth}`) : null),
      );
    }
    for (const l of n.legs) {
      const far = l.container ? `${l.container}${l.peer ? " " + l.peer : ""}` : "unknown end";
      members.append(
        el("div", { class: "leg", "data-iface": l.iface, "data-role": "manual-veth", title: "a veth added by hand (no Docker endpoint)" },
          el("span", { class: "tag" }, "hand-made veth"),
          `${l.iface} → ${far}`),
      );
    }
    for (const ip of [...(addresses.get(n.name) || [])].sort()) {
      members.append(el("div", { class: "address", "data-address": ip }, ip));
    }
    const subnets = n.subnets.join(", ") || "no subnet";
    box.append(
      el("section", { class: "network", "data-network": n.name },
        el("header", {},
          el("h2", {}, n.name),
          el("div", { class: "meta" },
            el("span", { "data-iface": n.bridge, "data-role": "bridge" }, n.bridge),
            ` · ${subnets}${n.internal ? " · internal" : ""}${n.bridge_present ? "" : " · no bridge yet"}`)),
        members),
    );
  }
  for (const b of m.bridges) {
    box.append(
      el("section", { class: "bridge-box", "data-bridge": b.name },
        el("header", {}, el("h2", {}, el("span", { "data-iface": b.name, "data-role": "bridge" }, b.name)),
          el("div", { class: "meta" }, "a bridge of the host (no Docker network)")),
        el("div", { class: "members" }, ...b.ports.map((p) => el("div", { class: "port", "data-iface": p, "data-role": "veth" }, p)))),
    );
  }
  for (const o of m.overlays || []) {
    const vnis = o.vnis.length ? ` · VNI ${o.vnis.join(", ")}` : "";
    box.append(
      el("section", { class: "network overlay", "data-overlay": o.name },
        el("header", {},
          el("h2", {}, o.name),
          el("div", { class: "meta" },
            `${o.ingress ? "ingress " : ""}overlay (Swarm) · ${o.subnets.join(", ") || "no subnet"}${vnis} · listed, not observed`)),
        el("div", { class: "members" },
          ...(o.containers.length
            ? o.containers.map((c) =>
              el("div", { class: "container", "data-overlay-member": c.name },
                el("strong", {}, c.name),
                el("span", { class: "meta" }, c.ips.join(" "))))
            : [el("div", { class: "meta" }, "no container of this host")]))),
    );
  }
  const elsewhere = addresses.get("");
  if (elsewhere && elsewhere.size) {
    box.append(
      el("section", { class: "network elsewhere" },
        el("header", {}, el("h2", {}, "other addresses")),
        el("div", { class: "members" }, ...[...elsewhere].sort().map((ip) => el("div", { class: "address", "data-address": ip }, ip)))),
    );
  }
}

// ---- the edges -------------------------------------------------------------------

function endElement(name, ip, network, via) {
  const q = (s) => CSS.escape(s);
  if (via) {
    const leg = document.querySelector(`[data-role="manual-veth"][data-iface="${q(via)}"]`);
    if (leg) return leg;
  }
  if (name !== ip) {
    return (network && document.querySelector(`[data-network="${q(network)}"] [data-container="${q(name)}"]`))
      || document.querySelector(`[data-container="${q(name)}"]`);
  }
  return document.querySelector(`[data-address="${q(ip)}"]`);
}

function opacity(e) {
  return Math.max(0.25, 1 - e.age_s / 60).toFixed(2);
}

function summary(e) {
  const what = e.what === "arp" ? "ARP" : "ping";
  switch (e.state) {
    case "answered":
      return `${what} answered${e.rtt_ms !== undefined ? ` in ${e.rtt_ms.toFixed(3)} ms` : ""} · ${e.rate}/s`;
    case "dropped":
      return `${what} dropped${e.drop ? ` (${e.drop.reason})` : ""} · ${e.rate}/s`;
    default:
      return e.what === "arp" ? `ARP request unanswered (${e.arp_unanswered} asked)` : `ping unanswered · ${e.rate}/s`;
  }
}

function dropText(d) {
  if (!d) return "";
  const parts = [`${d.reason} at ${d.location || "?"} on ${d.iface || "?"} (${d.phase})`];
  if (d.hook) parts.push(`hook ${d.hook}`);
  if (d.rule) parts.push(`rule: ${d.rule}`);
  const ex = d.explained;
  if (ex) {
    parts.push(`(${ex.backend} table ${ex.family} ${ex.table})`);
    if (ex.docker) parts.push(`— ${ex.docker.summary}`);
  }
  return parts.join(" ");
}

function drawEdges(m) {
  const list = $("edges");
  const seen = new Set();
  let prev = null;
  for (const e of m.edges) {
    seen.add(e.id);
    let li = list.querySelector(`li[data-id="${CSS.escape(e.id)}"]`);
    if (!li) {
      li = el("li", { class: "edge", "data-id": e.id, tabindex: "0" },
        el("span", { class: "ends" }), " ", el("span", { class: "state" }),
        el("div", { class: "edge-details" }));
      li.addEventListener("click", () => select(e.id));
      li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(e.id); });
    }
    li.dataset.src = e.src;
    li.dataset.dst = e.dst;
    li.dataset.state = e.state;
    li.dataset.what = e.what;
    li.style.opacity = opacity(e);
    li.querySelector(".ends").textContent = `${e.src} → ${e.dst}${e.via ? ` (over ${e.via})` : ""}`;
    li.querySelector(".state").textContent = summary(e);
    const counts = `${e.answered} answered, ${e.dropped} dropped, ${e.unanswered + e.arp_unanswered} unanswered`;
    li.querySelector(".edge-details").textContent = e.state === "dropped"
      ? dropText(e.drop)
      : e.drop ? `${counts}; dropped earlier: ${dropText(e.drop)}` : counts;
    li.classList.toggle("selected", state.selected === e.id);
    // Keep the list in the map's (stable) order.
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== li) list.insertBefore(li, want);
    prev = li;
  }
  for (const li of [...list.children]) if (!seen.has(li.dataset.id)) li.remove();
  drawLines(m);
}

function drawLines(m) {
  const svg = $("lines");
  const board = $("board").getBoundingClientRect();
  const keep = new Set();
  // Pairs drawn both ways bend to either side, so both stay visible.
  for (const e of m.edges) {
    const a = endElement(e.src, e.src_ip, e.src_network, null);
    const b = endElement(e.dst, e.dst_ip, e.dst_network, e.via);
    if (!a || !b || a === b) continue;
    keep.add(e.id);
    const ra = a.getBoundingClientRect();
    const rb = b.getBoundingClientRect();
    const ax = ra.left + ra.width / 2 - board.left, ay = ra.top + ra.height / 2 - board.top;
    const bx = rb.left + rb.width / 2 - board.left, by = rb.top + rb.height / 2 - board.top;
    // End at the edge of the target's box rather than its middle.
    const dx = bx - ax, dy = by - ay, len = Math.hypot(dx, dy) || 1;
    const shrink = Math.min(len / 3, Math.max(rb.width, rb.height) / 2);
    const ex = bx - (dx / len) * shrink, ey = by - (dy / len) * shrink;
    const bend = Math.min(60, len / 4);
    const cx = (ax + ex) / 2 - (dy / len) * bend, cy = (ay + ey) / 2 + (dx / len) * bend;
    let p = svg.querySelector(`path[data-edge="${CSS.escape(e.id)}"]`);
    if (!p) {
      p = document.createElementNS(SVG, "path");
      p.setAttribute("data-edge", e.id);
      p.addEventListener("click", () => select(e.id));
      const title = document.createElementNS(SVG, "title");
      p.append(title);
      svg.append(p);
    }
    p.setAttribute("d", `M${ax.toFixed(1)},${ay.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${ex.toFixed(1)},${ey.toFixed(1)}`);
    p.setAttribute("class", `line ${e.state}${state.selected === e.id ? " selected" : ""}`);
    p.style.opacity = opacity(e);
    p.firstChild.textContent = `${e.src} → ${e.dst}: ${summary(e)}`;
  }
  for (const p of [...svg.querySelectorAll("path[data-edge]")]) if (!keep.has(p.dataset.edge)) p.remove();
}

// ---- details ---------------------------------------------------------------------

function select(id) {
  state.selected = id;
  $("verdict").replaceChildren();
  if (state.map) {
    drawEdges(state.map);
    drawDetails(state.map);
  }
}

function drawDetails(m) {
  const d = $("details");
  const e = m.edges.find((x) => x.id === state.selected);
  if (!e) {
    d.hidden = true;
    return;
  }
  d.hidden = false;
  d.dataset.src = e.src;
  d.dataset.dst = e.dst;
  $("details-title").textContent = `${e.src} → ${e.dst}`;
  $("details-state").textContent = summary(e);
  const c = $("details-counters");
  c.replaceChildren();
  const row = (k, v) => c.append(el("dt", {}, k), el("dd", {}, String(v)));
  row("addresses", `${e.src_ip} → ${e.dst_ip}`);
  row("answered", e.answered);
  row("dropped", e.dropped);
  row("unanswered", e.unanswered);
  if (e.arp_unanswered) row("ARP unanswered", e.arp_unanswered);
  if (e.rtt_avg_ms !== undefined) row("rtt (avg)", `${e.rtt_avg_ms.toFixed(3)} ms`);
  row("rate", `${e.rate}/s`);
  row("last seen", `${e.age_s} s ago`);
  const dropBox = $("details-drop");
  dropBox.replaceChildren();
  if (e.drop) {
    dropBox.append(el("h3", {}, e.state === "dropped" ? "Why it is dropped" : "Why it was dropped earlier"), el("p", {}, `${e.drop.reason} at ${e.drop.location || "?"} on ${e.drop.iface || "?"} (${e.drop.phase})${e.drop.hook ? `, hook ${e.drop.hook}` : ""}`));
    if (e.drop.rule) dropBox.append(el("div", { class: "rule" }, e.drop.rule));
    const ex = e.drop.explained;
    if (ex && ex.docker) {
      dropBox.append(el("p", {}, ex.docker.summary));
      for (const r of ex.docker.remedies || []) dropBox.append(el("p", {}, "to let it through: ", el("code", {}, r)));
      for (const r of ex.docker.caveats || []) dropBox.append(el("p", { class: "meta" }, r));
    }
  }
  const js = $("details-journeys");
  js.replaceChildren();
  for (const j of e.journeys) {
    const hops = el("ul", {}, ...j.hops.map((h) => el("li", {}, `+${h.at_us} µs ${h.phase} ${h.direction} ${h.label}`)));
    js.append(el("li", {}, `seq ${j.seq}: ${j.result}${j.rtt_ms !== undefined ? ` in ${j.rtt_ms.toFixed(3)} ms` : ""}`, hops));
  }
  const b = $("diagnose");
  b.disabled = m.status.read_only || e.src === e.src_ip;
  b.title = m.status.read_only ? "the daemon runs with --read-only" : e.src === e.src_ip ? "diagnose starts from a container" : "";
}

async function diagnose() {
  const e = state.map && state.map.edges.find((x) => x.id === state.selected);
  if (!e) return;
  const out = $("verdict");
  const b = $("diagnose");
  b.disabled = true;
  out.replaceChildren(el("p", {}, `diagnosing ${e.src} → ${e.dst}…`));
  try {
    const r = await fetch("/v1/diagnose", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ src: e.src, dst: e.dst }),
    });
    const text = await r.text();
    if (!r.ok) {
      out.replaceChildren(el("p", { class: "message" }, `diagnose failed: ${text.trim()}`));
      return;
    }
    const v = JSON.parse(text);
    out.replaceChildren();
    out.dataset.reachable = String(v.reachable);
    for (const x of v.verdicts) {
      const box = el("div", { class: "one-verdict", "data-verdict": x.verdict });
      box.append(el("p", { class: "message" }, x.message));
      for (const d of x.details || []) box.append(el("p", {}, d));
      if (x.hint) box.append(el("p", {}, "fix: ", el("code", {}, x.hint)));
      out.append(box);
    }
  } catch (err) {
    out.replaceChildren(el("p", { class: "message" }, `diagnose failed: ${err}`));
  } finally {
    b.disabled = false;
  }
}

// ---- the stream ------------------------------------------------------------------

function draw(m) {
  const t0 = performance.now();
  state.map = m;
  state.updates += 1;
  showStatus(m.status, true);
  const empty = $("empty");
  empty.hidden = !m.status.empty;
  empty.textContent = m.status.empty ? `Nothing to show: ${m.status.empty}` : "";
  const key = topoKeyOf(m);
  if (key !== state.topoKey) {
    state.topoKey = key;
    drawBoxes(m);
  }
  drawEdges(m);
  if (state.selected) drawDetails(m);
  state.lastDrawMs = performance.now() - t0;
}

function connect() {
  const es = new EventSource("/v1/map?sse=1");
  es.addEventListener("map", (ev) => {
    try {
      draw(JSON.parse(ev.data));
    } catch (err) {
      console.error("netlab: a map that could not be drawn", err);
    }
  });
  es.onerror = () => {
    showStatus(null, false);
  };
}

$("close").addEventListener("click", () => { state.selected = null; $("details").hidden = true; if (state.map) drawEdges(state.map); });
$("diagnose").addEventListener("click", diagnose);
window.addEventListener("resize", () => { if (state.map) drawLines(state.map); });
connect();
