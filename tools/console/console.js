// The Intent console: sign in through Auth, pick a tenant, watch its events live. Plain
// browser JavaScript on supabase-js's own bundle (served from the project's node_modules);
// everything it shows comes through the same client paths an app uses, under RLS.
//
// Each view beyond the events table and the composer is a module of its own with
//   show(context)      called after sign-in and after every tenant switch, where context is
//                      {supabase, claims, tenant, panel (the view's <div class="panel">)}
//   onEvent(event)     (optional) every event of the tenant topic, as broadcast
//   onShown()          (optional) its tab was opened
import * as inspector from "./inspector.js";
import * as readModels from "./read_models.js";
import * as sagas from "./sagas.js";
import * as traces from "./traces.js";
import * as health from "./health.js";

const $ = (id) => document.getElementById(id);
const VIEWS = { inspector, "read-models": readModels, sagas, traces, health };
const MAX_ROWS = 500;
let supabase = null;
let channel = null;
let paused = false;

const claimsOf = (token) => {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part));
};

async function defaults() {
  try {
    const answer = await fetch("config.json");
    if (answer.ok) return await answer.json();
  } catch { /* served elsewhere: the user types them */ }
  return {};
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  const token = $("token").value.trim();
  if (token) return useToken(token);
  supabase = window.supabase.createClient($("url").value, $("anon-key").value,
    { auth: { persistSession: false } });
  const { data, error } = await supabase.auth.signInWithPassword({
    email: $("email").value, password: $("password").value,
  });
  if (error) {
    $("sign-in-error").textContent = `${error.code ?? "error"}: ${error.message}`;
    return;
  }
  await showSession(data.session);
}

// A pasted token (a script's `intent token`, or one copied from an app): every call carries
// it; there is no session to refresh, so switching tenants asks for a new token.
async function useToken(token) {
  let claims;
  try {
    claims = claimsOf(token);
  } catch {
    $("sign-in-error").textContent = "malformed_token: that is not a JWT";
    return;
  }
  supabase = window.supabase.createClient($("url").value, $("anon-key").value,
    { accessToken: async () => token });
  pastedToken = true;
  await showSession({ access_token: token, claims });
}

let pastedToken = false;

async function showSession(session) {
  const claims = claimsOf(session.access_token);
  const tenant = claims.app_metadata?.tenant_id ?? null;
  const name = claims.email ?? claims.sub;
  $("who").textContent = tenant
    ? `${name} · tenant ${tenant} (${claims.app_metadata.tenant_role ?? claims.role})`
    : `${name} · no tenant yet`;
  $("who").dataset.tenant = tenant ?? "";
  $("sign-in").hidden = true;
  $("tenants").hidden = false;
  $("tabs").hidden = false;
  await listMemberships(tenant);
  await showComposer();
  if (tenant) await watch(tenant);
  for (const [id, view] of Object.entries(VIEWS)) {
    const panel = $(id).querySelector(".panel");
    panel.replaceChildren();
    await view.show({ supabase, claims, tenant, panel });
  }
  openTab(currentTab);
}

// -- tabs: one view at a time -------------------------------------------------------------
let currentTab = "events";

function openTab(id) {
  currentTab = id;
  for (const section of document.querySelectorAll("section.view")) section.hidden = section.id !== id;
  for (const button of $("tabs").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.view === id);
  }
  VIEWS[id]?.onShown?.();
}

// -- the command composer: a form per command type, from the catalogue's JSON Schemas (the
// same ones the `command` function validates with) -----------------------------------------
let catalogue = {};

async function showComposer() {
  const answer = await fetch("catalogue.json");
  if (!answer.ok) return;
  catalogue = (await answer.json()).commands;
  const select = $("command-type");
  select.replaceChildren(...Object.keys(catalogue).sort().map((name) => new Option(name, name)));
  select.onchange = () => renderFields(select.value);
  renderFields(select.value);
}

function renderFields(type) {
  const schema = catalogue[type].schema;
  const required = new Set(schema.required ?? []);
  const fields = $("command-fields");
  fields.replaceChildren();
  for (const [name, spec] of Object.entries(schema.properties ?? {})) {
    const label = document.createElement("label");
    label.textContent = required.has(name) ? `${name} *` : name;
    const input = document.createElement("input");
    input.name = name;
    input.dataset.kind = spec.type ?? "string";
    if (spec.format === "uuid") input.value = crypto.randomUUID();
    if (spec.default !== undefined) input.value = String(spec.default);
    const error = document.createElement("span");
    error.className = "field-error";
    error.dataset.field = name;
    label.append(input, error);
    fields.append(label);
  }
}

function payloadOf() {
  const payload = {};
  for (const input of $("command-fields").querySelectorAll("input")) {
    if (input.value === "") continue;
    const kind = input.dataset.kind;
    payload[input.name] = kind === "integer" || kind === "number" ? Number(input.value)
      : kind === "boolean" ? input.value === "true" : input.value;
  }
  return payload;
}

async function send(event) {
  event.preventDefault();
  for (const span of document.querySelectorAll(".field-error")) span.textContent = "";
  $("outcome-events").textContent = "";
  const { data, error } = await supabase.functions.invoke("command", {
    body: { type: $("command-type").value, payload: payloadOf(), wait: true },
  });
  if (error) {
    const body = await error.context.json().catch(() => ({}));
    const refusal = body.error ?? body;
    for (const problem of refusal.details?.errors ?? []) {
      const field = String(problem.path ?? "").replace(/^\//, "").split("/")[0];
      const span = document.querySelector(`.field-error[data-field="${field}"]`);
      if (span) span.textContent = problem.message;
    }
    say(`refused: ${refusal.code ?? error.message}`, "refused");
    return;
  }
  const events = data.events ?? [];
  if (data.status === "rejected") {
    say(`rejected: ${data.error?.code ?? ""} ${data.error?.reason ?? ""}`, "refused");
    return;
  }
  const types = events.map((e) => e.event_type).join(", ");
  say(`${data.status}${types ? `: ${types}` : ""}`, data.status === "processed" ? "ok" : "");
  // The events it recorded, as stored: what a subscriber receives.
  $("outcome-events").textContent = events.map((e) =>
    `v${e.version} ${e.event_type} ${JSON.stringify(e.payload ?? {})}`).join("\n");
}

function say(text, kind) {
  $("outcome").textContent = text;
  $("outcome").className = kind;
}

async function listMemberships(active) {
  const { data, error } = await supabase.rpc("my_memberships");
  const list = $("memberships");
  list.replaceChildren();
  for (const row of error ? [] : data) {
    const item = document.createElement("li");
    item.textContent = `${row.tenant_id} (${row.role})`;
    if (row.tenant_id !== active) {
      const button = document.createElement("button");
      button.textContent = "switch";
      button.onclick = () => switchTo(row.tenant_id);
      item.append(button);
    }
    list.append(item);
  }
}

async function switchTo(tenant) {
  const { error } = await supabase.functions.invoke("command", {
    body: { type: "tenancy.switch_tenant", payload: { tenant_id: tenant }, wait: true },
  });
  if (error) return;
  if (pastedToken) {
    $("who").textContent += " · switched: sign in again (a pasted token cannot be refreshed)";
    return;
  }
  const { data } = await supabase.auth.refreshSession(); // the hook writes the new tenant
  if (channel) await supabase.removeChannel(channel);
  $("event-rows").replaceChildren();
  await showSession(data.session);
}

function shown(event) {
  const type = $("filter-type").value.trim();
  const aggregate = $("filter-aggregate").value.trim();
  return (!type || event.event_type.startsWith(type))
    && (!aggregate || event.aggregate_id === aggregate);
}

function received(event) {
  for (const view of Object.values(VIEWS)) view.onEvent?.(event);
  addRow(event);
}

// The time of day in UTC to the millisecond (the whole timestamp is the cell's title).
const clock = (at) => {
  const when = new Date(at);
  return Number.isNaN(when.getTime()) ? String(at) : when.toISOString().slice(11, 23);
};

function addRow(event) {
  if (paused || !shown(event)) return;
  const row = document.createElement("tr");
  row.dataset.type = event.event_type;
  for (const value of [clock(event.recorded_at), event.event_type,
    `${event.aggregate_type}/${event.aggregate_id}`, event.version,
    event.metadata?.correlation_id ?? ""]) {
    const cell = document.createElement("td");
    cell.textContent = value;
    row.append(cell);
  }
  row.children[0].title = event.recorded_at;
  // The aggregate opens in the inspector (which listens for "intent:inspect", as does the tab).
  const aggregate = row.children[2];
  aggregate.className = "inspect";
  aggregate.title = "open in the inspector";
  aggregate.onclick = () => document.dispatchEvent(new CustomEvent("intent:inspect", {
    detail: { aggregate_type: event.aggregate_type, aggregate_id: event.aggregate_id } }));
  const rows = $("event-rows");
  rows.prepend(row);
  while (rows.children.length > MAX_ROWS) rows.lastChild.remove();
}

async function watch(tenant) {
  await supabase.realtime.setAuth(); // before joining the private topic
  channel = supabase.channel(`intent:tenant:${tenant}`, { config: { private: true } })
    .on("broadcast", { event: "*" }, ({ payload }) => received(payload))
    .subscribe((status) => { $("live-state").textContent = status.toLowerCase(); });
}

$("pause").onclick = () => {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
};
for (const button of $("tabs").querySelectorAll("button")) {
  button.onclick = () => openTab(button.dataset.view);
}
document.addEventListener("intent:inspect", () => openTab("inspector"));
$("sign-in-form").addEventListener("submit", signIn);
$("composer-form").addEventListener("submit", send);
const given = await defaults();
$("url").value = given.url ?? "";
$("anon-key").value = given.anonKey ?? "";
