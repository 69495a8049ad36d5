// Organizer progress page: renders the progress JSON and refreshes it every few seconds
// without reloading the page (the organizer can watch votes arrive while raters work).
const REFRESH_MS = 5000;
const root = document.getElementById("progress");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function share(votes, target) { return target ? Math.min(1, votes / target) : 0; }

// Colour from dark red (nothing yet) through amber to green (target reached); dark enough at every
// step for the light cell text to keep a contrast above 4.5:1.
function heat(f) {
  const hue = Math.round(120 * f);
  return `background: hsl(${hue} 55% ${22 + 5 * f}%)`;
}

function kpis(p) {
  const s = p.sessions;
  const items = [
    ["Votes", `${p.votes} / ${p.target}`], ["Done", `${p.percent}%`], ["Sessions started", s.started],
    ["Completed", s.completed], ["Active", s.active], ["Abandoned", s.abandoned], ["Screened out", s.screened_out],
    ["Median session", s.median_duration_s == null ? "–" : `${Math.round(s.median_duration_s / 60 * 10) / 10} min`],
    ["Votes last hour", p.pace.last_hour], ["Votes per hour (24 h)", perHour(p)],
  ];
  return items.map(([k, v]) => el("div", { class: "kpi" }, el("span", { class: "kpi-v" }, v), el("span", { class: "kpi-k" }, k)));
}

function pairMatrix(p) {
  const index = new Map(p.conditions.map((c, i) => [c, i]));
  const n = p.conditions.length;
  const grid = Array.from({ length: n }, () => Array(n).fill(null));
  for (const c of p.cells) {
    const i = index.get(c.cond_a), j = index.get(c.cond_b);
    const [a, b] = i < j ? [i, j] : [j, i];
    const cell = grid[a][b] || { votes: 0, target: 0 };
    cell.votes += c.votes; cell.target += c.target;
    grid[a][b] = grid[b][a] = cell;
  }
  return { rows: p.conditions, cols: p.conditions, grid };
}

function stimulusMatrix(p) {
  const rows = [...new Set(p.cells.map((c) => c.content))];
  const grid = rows.map(() => Array(p.conditions.length).fill(null));
  for (const c of p.cells) grid[rows.indexOf(c.content)][p.conditions.indexOf(c.cond)] = c;
  return { rows, cols: p.conditions, grid };
}

function heatmap(p) {
  const m = p.pairwise ? pairMatrix(p) : stimulusMatrix(p);
  const caption = p.pairwise ? "Votes per condition pair (all contents), against target"
    : "Votes per stimulus (content × condition), against target";
  const head = el("tr", {}, el("th", { scope: "col" }, ""), ...m.cols.map((c) => el("th", { scope: "col" }, c)));
  const body = m.rows.map((r, i) => el("tr", {}, el("th", { scope: "row" }, r), ...m.grid[i].map((cell) =>
    cell ? el("td", { style: heat(share(cell.votes, cell.target)), title: `${cell.votes} of ${cell.target}` },
      `${cell.votes}/${cell.target}`) : el("td", { class: "na" }, "·"))));
  return el("table", { class: "heatmap" }, el("caption", {}, caption), el("thead", {}, head), el("tbody", {}, ...body));
}

function cellsTable(p) {
  const cols = p.pairwise ? ["cond_a", "cond_b"] : ["content", "cond"];
  const head = el("tr", {}, ...[...cols, "votes", "target", "%"].map((c) => el("th", { scope: "col" }, c)));
  const rows = p.cells.map((c) => el("tr", {}, ...cols.map((k) => el("td", {}, c[k])),
    el("td", { class: "num" }, c.votes), el("td", { class: "num" }, c.target),
    el("td", { class: "num" }, Math.round(100 * share(c.votes, c.target)))));
  return el("table", { class: "table" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function perHour(p) {
  const total = p.pace.hourly_24h.reduce((a, b) => a + b, 0);
  // Two significant digits: a slow start (1 vote in 24 h) must not read as 0.
  return total ? Number((total / 24).toPrecision(2)) : 0;
}

function votes(n) { return `${n} vote${n === 1 ? "" : "s"}`; }

function paceSummary(p) {
  const h = p.pace.hourly_24h;
  const peak = Math.max(...h);
  return `${votes(h.reduce((a, b) => a + b, 0))} in the last 24 hours, ${perHour(p)} per hour on average, ` +
    `${p.pace.last_hour} in the last hour` + (peak ? `, at most ${peak} in one hour.` : ".");
}

function pace(p) {
  const max = Math.max(1, ...p.pace.hourly_24h);
  return p.pace.hourly_24h.map((v, i) => el("span", {
    class: "bar", style: `height:${Math.round(100 * v / max)}%`, title: `${23 - i} h ago: ${v} votes`,
  }));
}

function flagged(p) {
  const f = p.flagged;
  const summary = el("p", {}, `${f.stalled} trial(s) with stalled playback, ${f.hidden} with the tab hidden.`);
  if (!f.recent.length) return [summary];
  const head = el("tr", {}, ...["session", "trial", "stalls", "hidden ms", "answered"].map((c) => el("th", { scope: "col" }, c)));
  const rows = f.recent.map((r) => el("tr", {}, el("td", {}, r.session), el("td", {}, r.position + 1),
    el("td", { class: "num" }, r.stalls), el("td", { class: "num" }, r.hidden_ms ?? 0), el("td", {}, r.answered_at)));
  return [summary, el("table", { class: "table" }, el("thead", {}, head), el("tbody", {}, ...rows))];
}

function render(p) {
  document.getElementById("kpis").replaceChildren(...kpis(p));
  document.getElementById("progress-fill").style.width = `${p.percent}%`;
  root.querySelector("[role=progressbar]").setAttribute("aria-valuenow", p.percent);
  document.getElementById("heatmap").replaceChildren(heatmap(p));
  document.getElementById("cells-table").replaceChildren(cellsTable(p));
  document.getElementById("pace").replaceChildren(...pace(p));
  document.getElementById("pace-summary").textContent = paceSummary(p);
  const badge = document.getElementById("status-badge");
  if (badge && badge.textContent !== p.status) {  // changed in another tab or by another organizer
    badge.textContent = p.status;
    badge.className = `badge badge-${p.status}`;
  }
  document.getElementById("flagged").replaceChildren(...flagged(p));
  document.getElementById("progress-updated").textContent = `updated ${new Date(p.generated_at).toLocaleTimeString()}`;
  root.dataset.votes = p.votes;
}

function showAlert(message, link) {
  const box = document.getElementById("progress-alert");
  box.hidden = !message;
  box.replaceChildren(...(message ? [message] : []), ...(link ? [" ", link] : []));
}

async function refresh() {
  if (document.hidden) return;  // nobody is looking: catch up when the tab is shown again
  try {
    const res = await fetch(root.dataset.url, { headers: { Accept: "application/json" } });
    const json = (res.headers.get("Content-Type") || "").includes("application/json");
    if (res.ok && json) {
      render(await res.json());
      showAlert(null);
    } else if (res.redirected || res.status === 401) {
      showAlert("You were logged out, so the numbers stopped updating.", el("a", { href: root.dataset.login }, "Log in again"));
    } else {
      showAlert(`The progress could not be refreshed (HTTP ${res.status}); retrying.`);
    }
  } catch (err) {
    showAlert("The server cannot be reached; retrying.");
  }
}

render(JSON.parse(document.getElementById("progress-data").textContent));
setInterval(refresh, REFRESH_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
