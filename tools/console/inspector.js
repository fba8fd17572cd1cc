// The aggregate inspector: hydrate one of your tenant's aggregates, step through its
// versions (the state as of version N and the diff each event made), see where snapshots
// were taken, and follow it live.
//
// The events are read in the browser under RLS (read_stream, pages of up to 1,000: another
// tenant's aggregate reads as an empty stream); the states come from the application's own
// Python domain through the gateway's POST /console/fold (upcasters and evolve, as the store
// folds), which folds only what it is sent. Snapshot versions come from aggregate_snapshots.

const PAGE = 1000;        // read_stream's largest page
const FOLD_CHUNK = 200;   // events per fold request: the answer holds a state per event
const STRIP = 15;         // versions shown either side of the selected one

let context = null;       // {supabase, claims, tenant, panel}
let ui = null;            // the panel's elements
let shown = null;         // the loaded aggregate: {type, id, steps, snapshots, checks}
let generation = 0;       // bumped by every load: a slower, older load's answer is dropped
let catchingUp = null;    // the running follow-live catch-up, if any
let again = false;        // an event came during the catch-up: run it once more
const knownTypes = new Set();

const element = (tag, { dataset = {}, ...props } = {}, ...children) => {
  const made = Object.assign(document.createElement(tag), props);
  Object.assign(made.dataset, dataset);
  made.append(...children);
  return made;
};
const pretty = (value) => (value === undefined ? "" : JSON.stringify(value, null, 2));

export async function show(given) {
  context = given;
  generation += 1;
  shown = null;
  ui = buildPanel(given.panel);
  say(given.tenant ? "enter an aggregate id and load it" : "sign in to a tenant first");
  await addCatalogueTypes();
}

export function onEvent(event) {
  addType(event.aggregate_type);
  if (shown && ui?.follow.checked && event.aggregate_type === shown.type
      && event.aggregate_id === shown.id) followLive();
}

export function onShown() {
  if (ui && !ui.id.value) ui.id.focus();
}

// Any view (the live events table) can ask for an aggregate: the page opens this tab.
document.addEventListener("intent:inspect", ({ detail }) => {
  if (!ui || !detail?.aggregate_type || !detail?.aggregate_id) return;
  addType(detail.aggregate_type);
  ui.type.value = detail.aggregate_type;
  ui.id.value = detail.aggregate_id;
  load();
});

// -- the panel ------------------------------------------------------------------------------

function buildPanel(panel) {
  const made = {
    type: element("select", { id: "inspector-type", dataset: { testid: "inspector-type" } }),
    id: element("input", { id: "inspector-id", placeholder: "aggregate id",
      dataset: { testid: "inspector-id" } }),
    load: element("button", { type: "submit", textContent: "Load",
      dataset: { testid: "inspector-load" } }),
    follow: element("input", { type: "checkbox", dataset: { testid: "inspector-follow" } }),
    status: element("output", { className: "inspector-status",
      dataset: { testid: "inspector-status" } }),
    prev: element("button", { type: "button", textContent: "◀ prev",
      dataset: { testid: "inspector-prev" } }),
    next: element("button", { type: "button", textContent: "next ▶",
      dataset: { testid: "inspector-next" } }),
    slider: element("input", { type: "range", min: 1, max: 1, value: 1,
      dataset: { testid: "inspector-slider" } }),
    versions: element("ol", { className: "inspector-versions",
      dataset: { testid: "inspector-versions" } }),
    snapshots: element("p", { className: "inspector-snapshots",
      dataset: { testid: "inspector-snapshots" } }),
    event: element("p", { className: "inspector-event", dataset: { testid: "inspector-event" } }),
    payload: element("pre", { dataset: { testid: "inspector-payload" } }),
    diff: element("tbody", { dataset: { testid: "inspector-diff" } }),
    state: element("pre", { dataset: { testid: "inspector-state" } }),
  };
  const form = element("form", { className: "controls" },
    element("label", {}, "Aggregate type", made.type),
    element("label", {}, "Aggregate id", made.id), made.load,
    element("label", { className: "inspector-follow" }, made.follow, "Follow live"));
  form.onsubmit = (event) => { event.preventDefault(); load(); };
  made.prev.onclick = () => step(-1);
  made.next.onclick = () => step(+1);
  made.slider.oninput = () => select(Number(made.slider.value));
  made.follow.onchange = () => { if (made.follow.checked && shown) followLive(); };
  const diffTable = element("table", { className: "inspector-diff" },
    element("thead", {}, element("tr", {}, ...["path", "change", "before", "after"]
      .map((name) => element("th", { textContent: name })))), made.diff);
  made.body = element("div", { className: "inspector-body", hidden: true },
    element("div", { className: "controls inspector-stepper" }, made.prev, made.slider,
      made.next), made.versions, made.snapshots,
    element("div", { className: "inspector-columns" },
      element("div", {}, element("h3", { textContent: "Event" }), made.event, made.payload,
        element("h3", { textContent: "What it changed" }), diffTable),
      element("div", {}, element("h3", { textContent: "State as of this version" }),
        made.state)));
  panel.append(form, made.status, made.body);
  for (const type of [...knownTypes].sort()) made.type.append(new Option(type, type));
  return made;
}

function addType(type) {
  if (!type || knownTypes.has(type)) return;
  knownTypes.add(type);
  if (!ui) return;
  const options = [...ui.type.options];
  const before = options.find((option) => option.value > type) ?? null;
  ui.type.insertBefore(new Option(type, type), before);
}

async function addCatalogueTypes() {
  try {
    const answer = await fetch("catalogue.json");
    if (!answer.ok) return;
    const { commands } = await answer.json();
    for (const command of Object.values(commands ?? {})) addType(command.aggregate_type);
  } catch { /* the types of live events still come in */ }
}

function say(text, problem = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("problem", problem);
}

// -- loading ----------------------------------------------------------------------------------

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function load() {
  if (!context?.tenant) { say("sign in to a tenant first", true); return; }
  const type = ui.type.value;
  const id = ui.id.value.trim().toLowerCase();
  if (!type || !UUID_SHAPE.test(id)) { say("choose a type and enter a UUID", true); return; }
  const mine = ++generation;
  shown = null;
  ui.body.hidden = true;
  say(`loading ${type}/${id}…`);
  try {
    const steps = await foldAll(type, id, null, await readFrom(type, id, 1));
    const snapshots = await snapshotMarkers(type, id);
    if (mine !== generation) return;
    shown = { type, id, steps, snapshots, checks: new Map(), selected: 0 };
    if (steps.length) {
      ui.body.hidden = false;
      select(steps.length);
      checkNewestSnapshot(mine);
    } else {
      say(`no events: ${type}/${id} is empty, or not your tenant's`);
    }
    if (ui.follow.checked) followLive(); // what was appended while this loaded
  } catch (error) {
    if (mine === generation) say(error.message, true);
  }
}

// Every event of the stream from `from` on, page by page, as the caller may see them.
async function readFrom(type, id, from) {
  const events = [];
  for (let next = from; next !== null && next !== undefined;) {
    const { data, error } = await context.supabase.rpc("read_stream", {
      aggregate_type: type, aggregate_id: id, from_version: next, max_count: PAGE,
    });
    if (error) throw new Error(`read_stream: ${error.code ?? "error"}: ${error.message}`);
    events.push(...data.events);
    next = data.next_version;
  }
  return events;
}

// The state after each event, folded by the application in chunks, each chunk continuing
// from the last state of the one before. A step keeps the event it came from.
async function foldAll(type, id, before, events) {
  const steps = [];
  let start = before;
  for (let at = 0; at < events.length; at += FOLD_CHUNK) {
    const chunk = events.slice(at, at + FOLD_CHUNK);
    const answer = await foldRequest({ aggregate_type: type, aggregate_id: id,
      state_before: start, events: chunk });
    answer.steps.forEach((done, index) => steps.push({ ...done, event: chunk[index] }));
    const last = steps[steps.length - 1];
    start = { version: last.version, state: last.state };
  }
  return steps;
}

async function foldRequest(body) {
  const answer = await fetch("fold", { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
  const parsed = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    throw new Error(`fold refused (${answer.status}): ${parsed.code ?? "error"}: `
      + `${parsed.message ?? ""}`);
  }
  return parsed;
}

// Snapshot versions -> {version, schema_version, taken_at}; none when the function is not
// there (an older database): the markers are a help, not a reason to fail the load.
async function snapshotMarkers(type, id) {
  const { data, error } = await context.supabase.rpc("aggregate_snapshots",
    { aggregate_type: type, aggregate_id: id });
  return new Map((error ? [] : data).map((marker) => [marker.version, marker]));
}

// Whether the newest stored snapshot equals the fold at its version: load_aggregate hands
// it out, and the fold restores it as the store would (upcast, validated by the model).
async function checkNewestSnapshot(mine) {
  const target = shown;
  const { data, error } = await context.supabase.rpc("load_aggregate",
    { aggregate_type: target.type, aggregate_id: target.id });
  const snapshot = error ? null : data.snapshot;
  if (!snapshot || snapshot.version > target.steps.length) return;
  try {
    const restored = await foldRequest({ aggregate_type: target.type,
      aggregate_id: target.id, state_before: snapshot, events: [] });
    target.checks.set(snapshot.version,
      sameJson(restored.start.state, target.steps[snapshot.version - 1].state));
  } catch {
    target.checks.set(snapshot.version, false); // the store could not restore it either
  }
  if (mine === generation && shown === target) select(target.selected);
}

function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length
    && keys.every((key) => Object.hasOwn(b, key) && sameJson(a[key], b[key]));
}

// -- following live -----------------------------------------------------------------------------

function followLive() {
  if (catchingUp) { again = true; return; }
  catchingUp = catchUp().finally(() => {
    catchingUp = null;
    if (again) { again = false; followLive(); }
  });
}

// Read from the next version, fold on from the head, append; stay at the head if there.
async function catchUp() {
  const mine = generation;
  const target = shown;
  if (!target) return;
  const head = target.steps.length;
  const last = target.steps[head - 1];
  try {
    const events = await readFrom(target.type, target.id, head + 1);
    if (!events.length) return;
    const steps = await foldAll(target.type, target.id,
      last ? { version: last.version, state: last.state } : null, events);
    const snapshots = await snapshotMarkers(target.type, target.id);
    if (mine !== generation || shown !== target) return;
    const atHead = target.selected === head;
    target.steps.push(...steps);
    target.snapshots = snapshots;
    ui.body.hidden = false;
    select(atHead ? target.steps.length : target.selected);
  } catch (error) {
    if (mine === generation) say(error.message, true);
  }
}

// -- showing a version ----------------------------------------------------------------------

function step(delta) {
  if (shown?.steps.length) select(shown.selected + delta);
}

function select(version) {
  const head = shown.steps.length;
  const selected = Math.min(Math.max(version, 1), head);
  shown.selected = selected;
  const current = shown.steps[selected - 1];
  ui.slider.max = head;
  ui.slider.value = selected;
  ui.prev.disabled = selected <= 1;
  ui.next.disabled = selected >= head;
  say(`${shown.type}/${shown.id} · version ${selected} of ${head}`);
  renderStrip(selected, head);
  renderSnapshots();
  renderEvent(current);
  ui.state.textContent = pretty(current.state);
  ui.state.dataset.version = String(selected);
}

function versionButton(version, label = String(version)) {
  const button = element("button", { type: "button", textContent: label,
    dataset: { version: String(version) } });
  button.onclick = () => select(version);
  return button;
}

function renderStrip(selected, head) {
  const from = Math.max(1, selected - STRIP);
  const to = Math.min(head, selected + STRIP);
  const items = [];
  if (from > 1) items.push(element("li", { className: "more", textContent: "…" }));
  for (let version = from; version <= to; version += 1) {
    const snapshot = shown.snapshots.has(version);
    const button = versionButton(version, snapshot ? `${version} ◆` : String(version));
    if (snapshot) button.title = `snapshot at version ${version}`;
    button.dataset.snapshot = String(snapshot);
    const item = element("li", {}, button);
    item.classList.toggle("selected", version === selected);
    item.classList.toggle("snapshot", snapshot);
    items.push(item);
  }
  if (to < head) items.push(element("li", { className: "more", textContent: "…" }));
  ui.versions.replaceChildren(...items);
}

function renderSnapshots() {
  const markers = [...shown.snapshots.values()];
  if (!markers.length) {
    ui.snapshots.replaceChildren("no snapshots stored");
    return;
  }
  const parts = ["snapshots at: "];
  for (const marker of markers) {
    const button = versionButton(marker.version, `◆ ${marker.version}`);
    button.dataset.snapshot = String(marker.version);
    button.title = `schema v${marker.schema_version}, taken ${marker.taken_at ?? "?"}`;
    parts.push(button);
    const check = shown.checks.get(marker.version);
    if (check !== undefined) {
      parts.push(element("span", { className: check ? "same" : "differs",
        dataset: { testid: "inspector-snapshot-check" },
        textContent: check ? " (equals the fold) " : " (differs from the fold!) " }));
    }
  }
  ui.snapshots.replaceChildren(...parts);
}

function renderEvent(current) {
  const event = current.event;
  const upcast = event.schema_version ? ` · schema v${event.schema_version}` : "";
  ui.event.textContent = `version ${current.version} · ${current.event_type}${upcast}`
    + ` · ${event.recorded_at ?? ""}`;
  ui.payload.textContent = pretty(event.payload);
  const rows = current.diff.map((change) => element("tr", { className: change.kind },
    element("td", { textContent: change.path }), element("td", { textContent: change.kind }),
    element("td", { textContent: change.kind === "added" ? "" : JSON.stringify(change.before) }),
    element("td", { textContent: change.kind === "removed" ? "" : JSON.stringify(change.after) })));
  ui.diff.replaceChildren(...(rows.length ? rows
    : [element("tr", {}, element("td", { colSpan: 4, textContent: "no change" }))]));
}
