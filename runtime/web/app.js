// The status page: polls /api/status every second and draws the chosen series' candles on a canvas.
"use strict";
const $ = (id) => document.getElementById(id);
const list = (x) => (Array.isArray(x) ? x : []);          // an empty Lua table arrives as {}
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "—");
const ago = (s) => (s == null ? "—" : s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`);
const bytes = (n) => (n > 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n > 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

function rows(id, items, cells) {
  $(id).querySelector("tbody").innerHTML = items.length
    ? items.map((x) => `<tr>${cells(x).map((c) => `<td${c.cls ? ` class="${c.cls}"` : ""}>${c.html ?? esc(c)}</td>`).join("")}</tr>`).join("")
    : `<tr><td class="muted">none</td></tr>`;
}

function render(s) {
  rows("scripts", list(s.scripts), (r) => [
    r.name, r.cron ? `cron ${r.cron}` : r.every ? `every ${r.every} s` : "—", when(r.last_run),
    { html: esc(r.last_status || "—"), cls: r.last_status === "ok" ? "ok" : r.last_status ? "bad" : "" },
    { html: esc(r.runs ?? 0), cls: "num" }, { html: esc(r.failures ?? 0), cls: "num" }, { html: esc(r.rows ?? 0), cls: "num" },
    r.last_error || "",
  ]);
  rows("budgets", list(s.budgets), (b) => [
    b.name, list(b.windows).map((w) => `${w.per}: ${Math.round(w.used)} / ${w.effective}`).join(", "),
    { html: esc(b.queued ?? 0), cls: "num" }, { html: esc(b.metrics?.requests ?? 0), cls: "num" },
    { html: esc(b.metrics?.throttled ?? 0), cls: "num" }, { html: esc(b.metrics?.bans ?? 0), cls: "num" },
    { html: esc(b.banned_until ? "banned" : b.breaker?.state ?? "closed"), cls: b.banned_until || b.breaker?.state === "open" ? "bad" : "ok" },
  ]);
  rows("alerts", list(s.alerts), (a) => [
    { html: esc(a.level), cls: a.level === "error" ? "bad" : "warn" }, a.kind, a.subject, a.message, when(a.opened),
    { html: esc(a.count), cls: "num" },
  ]);
  const series = list(s.series);
  rows("series", series, (r) => [
    r.source, r.instrument, r.timeframe, when(r.newest), { html: esc(ago(r.age)), cls: r.stale ? "bad" : "ok" },
  ]);
  const pick = $("pick");
  const keys = series.map((r) => `${r.source}|${r.instrument}|${r.timeframe}`);
  if (pick.options.length !== keys.length || keys.some((k, i) => pick.options[i].value !== k)) {
    const keep = pick.value || decodeURIComponent(location.hash.slice(1));
    pick.innerHTML = keys.map((k) => `<option value="${esc(k)}">${esc(k.replaceAll("|", " · "))}</option>`).join("");
    if (keys.includes(keep)) pick.value = keep;
  }
  const d = s.database || {};
  $("database").textContent = `${d.path} · ${bytes(d.size || 0)} (WAL ${bytes(d.wal_size || 0)}) · last verified backup ${when(d.last_backup)}` +
    ` · loop lag ${((s.loop_lag || 0) * 1000).toFixed(1)} ms`;
  $("updated").textContent = when(s.time);
  $("state").textContent = "live";
  if (pick.value) chart(pick.value);
}

let drawing = false;
async function chart(key) {
  if (drawing) return;
  drawing = true;
  try {
    const [source, instrument, timeframe] = key.split("|");
    const q = new URLSearchParams({ source, instrument, timeframe, limit: "200" });
    const data = await (await fetch(`/api/candles?${q}`)).json();
    draw(list(data.candles), key);
  } finally {
    drawing = false;
  }
}

function draw(c, key) {
  const cv = $("chart"), g = cv.getContext("2d"), W = cv.width, H = cv.height, pad = 40;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, W, H);
  if (!c.length) {
    $("chart-info").textContent = `${key}: no candles`;
    cv.dataset.drawn = "0";
    return;
  }
  let lo = Infinity, hi = -Infinity;
  for (const k of c) { lo = Math.min(lo, k[3]); hi = Math.max(hi, k[2]); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const y = (v) => pad / 2 + (H - pad) * (1 - (v - lo) / (hi - lo));
  const step = (W - pad) / c.length, body = Math.max(1, step * 0.7);
  g.strokeStyle = "#e3e6eb";
  g.fillStyle = "#8a93a3";
  g.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    g.beginPath(); g.moveTo(0, y(v)); g.lineTo(W - pad, y(v)); g.stroke();
    g.fillText(v.toPrecision(6), W - pad + 2, y(v) + 4);
  }
  c.forEach((k, i) => {
    const x = i * step + step / 2, up = k[4] >= k[1];
    g.strokeStyle = g.fillStyle = up ? "#137333" : "#b3261e";
    g.beginPath(); g.moveTo(x, y(k[2])); g.lineTo(x, y(k[3])); g.stroke();
    const top = y(Math.max(k[1], k[4])), bottom = y(Math.min(k[1], k[4]));
    g.fillRect(x - body / 2, top, body, Math.max(1, bottom - top));
  });
  cv.dataset.drawn = String(c.length);
  $("chart-info").textContent = `${key.replaceAll("|", " · ")}: ${c.length} candles to ${when(c[c.length - 1][0])}, last close ${c[c.length - 1][4]}`;
}

async function poll() {
  try {
    render(await (await fetch("/api/status")).json());
  } catch (e) {
    $("state").textContent = "daemon unreachable";
  }
  setTimeout(poll, 1000);
}
$("pick").addEventListener("change", () => { location.hash = encodeURIComponent($("pick").value); chart($("pick").value); });
poll();
