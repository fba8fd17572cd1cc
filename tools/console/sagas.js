// The Sagas view: the tenant's saga instances with their next timer. Instances live in
// Temporal, which a browser cannot reach; the saga workflow records what is worth seeing in
// intent.saga_instances, read here through the `saga_instances` RPC (under the caller's
// token: their tenant only). While the tab is open it refreshes every 2 s and soon after
// each event of the tenant, and the countdowns tick every second between refreshes.
const REFRESH_MS = 2000;
const TICK_MS = 1000;
const SOON_MS = 300; // after an event: the saga records its step a moment later

let context = null; // {supabase, tenant, panel} of the latest show()
let rows = [];
let refreshTimer = null;
let tickTimer = null;
let soonTimer = null;
let loading = null;

export async function show({ supabase, tenant, panel }) {
  stop();
  rows = [];
  context = { supabase, tenant, panel };
  panel.replaceChildren();
  if (!tenant) {
    panel.append(note("No tenant yet: create or join one to see its sagas."));
    return;
  }
  const status = document.createElement("p");
  status.className = "sagas-status";
  status.dataset.testid = "sagas-status";
  const table = document.createElement("table");
  table.className = "sagas-table";
  table.innerHTML = "<thead><tr><th>saga</th><th>instance</th><th>status</th>"
    + "<th>started</th><th>next timer</th><th>timers</th></tr></thead>";
  const body = document.createElement("tbody");
  body.id = "saga-rows";
  body.dataset.testid = "saga-rows";
  table.append(body);
  const empty = note("No saga instances in this tenant yet.");
  empty.id = "sagas-empty";
  panel.append(status, table, empty);
  render();
  if (visible()) start();
}

export function onShown() {
  if (context?.tenant) start();
}

export function onEvent() {
  if (!context?.tenant || !visible()) return;
  clearTimeout(soonTimer);
  soonTimer = setTimeout(refresh, SOON_MS);
}

document.addEventListener("visibilitychange", () => {
  if (visible() && context?.tenant) start();
});

// Polling runs only while the tab is open and the page is visible: each tick checks, and
// stops itself once the view is hidden (onShown or the page's return starts it again).
function visible() {
  const section = context?.panel.closest("section.view");
  return Boolean(section) && !section.hidden && !document.hidden;
}

function start() {
  if (refreshTimer) return;
  refresh();
  refreshTimer = setInterval(() => (visible() ? refresh() : stop()), REFRESH_MS);
  tickTimer = setInterval(tick, TICK_MS);
}

function stop() {
  clearInterval(refreshTimer);
  clearInterval(tickTimer);
  clearTimeout(soonTimer);
  refreshTimer = tickTimer = soonTimer = null;
}

async function refresh() {
  if (loading || !context?.tenant) return loading;
  const asked = context;
  loading = (async () => {
    const { data, error } = await asked.supabase.rpc("saga_instances");
    if (asked !== context) return; // signed in again meanwhile: not this view's rows
    if (error) {
      setStatus(`could not load: ${error.code ?? "error"} ${error.message ?? ""}`, true);
      return;
    }
    rows = data ?? [];
    render();
  })().finally(() => { loading = null; });
  return loading;
}

function render() {
  const body = context?.panel.querySelector("#saga-rows");
  if (!body) return;
  body.replaceChildren(...rows.map(rowOf));
  context.panel.querySelector("#sagas-empty").hidden = rows.length > 0;
  const running = rows.filter((r) => r.status === "running").length;
  setStatus(`${running} running · ${rows.length - running} completed · `
    + `refreshed ${new Date().toLocaleTimeString()}`, false);
}

function rowOf(instance) {
  const row = document.createElement("tr");
  row.dataset.workflowId = instance.workflow_id;
  row.dataset.instance = instance.instance;
  row.dataset.status = instance.status;
  row.className = `saga-${instance.status}`;
  const status = instance.outcome ? `${instance.status} (${instance.outcome})` : instance.status;
  row.append(cell(instance.saga), cell(instance.instance), cell(status, "saga-state"),
    cell(stamp(instance.started_at)), nextTimer(instance), timersOf(instance));
  return row;
}

function nextTimer(instance) {
  const td = cell("", "next-timer");
  if (!instance.next_timer_at) {
    td.textContent = "—";
    return td;
  }
  td.append(when(instance.next_timer_at), " ", countdown(instance.next_timer_at));
  return td;
}

function timersOf(instance) {
  const td = cell("", "saga-timers");
  const timers = Object.entries(instance.timers ?? {}).sort(([, a], [, b]) => a.localeCompare(b));
  if (!timers.length) td.textContent = "—";
  for (const [name, at] of timers) {
    const item = document.createElement("div");
    item.dataset.timer = name;
    item.append(`${name} `, when(at), " ", countdown(at));
    td.append(item);
  }
  return td;
}

function when(iso) {
  const time = document.createElement("time");
  time.dateTime = iso;
  time.title = iso;
  time.textContent = stamp(iso);
  return time;
}

function countdown(iso) {
  const span = document.createElement("span");
  span.className = "countdown";
  span.dataset.at = iso;
  span.textContent = untilText(iso);
  return span;
}

function tick() {
  if (!context) return;
  for (const span of context.panel.querySelectorAll(".countdown")) {
    span.textContent = untilText(span.dataset.at);
    span.classList.toggle("overdue", Date.parse(span.dataset.at) <= Date.now());
  }
}

// "in 12 s", "in 4 min 3 s", "in 2 h 5 min"; a timer past its time is "due 3 s ago" (the
// saga's row shows its next step only once the saga has taken it).
function untilText(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const span = duration(Math.abs(seconds));
  return seconds >= 0 ? `in ${span}` : `due ${span} ago`;
}

function duration(total) {
  const h = Math.floor(total / 3600);
  const min = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h} h ${min} min`;
  if (min) return `${min} min ${s} s`;
  return `${s} s`;
}

// UTC, to the second, like the store's own timestamps.
function stamp(iso) {
  if (!iso) return "";
  return `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function note(text) {
  const p = document.createElement("p");
  p.className = "sagas-empty";
  p.textContent = text;
  return p;
}

function setStatus(text, problem) {
  const status = context?.panel.querySelector(".sagas-status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("problem", problem);
}
