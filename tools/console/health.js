// Health: what `intent status` says, from public.console_health, refreshed every 2 s while
// the tab is open. An operator sees the system (commands, stuck batches, feed followers with
// their lag and errors, the Realtime relay's lag, the held-back feed, the feed head) and
// what needs attention, with the thresholds `intent status` uses by default; anyone else
// sees their tenant's commands only.
import { el, errorText, poller, seconds } from "./dom.js";

const REFRESH_MS = 2000;
const polling = poller(() => refresh(), REFRESH_MS);
const WARN_SECONDS = 60; // intent status: --held-back-after, --relay-behind-after
const STATUSES = ["pending", "dispatched", "processed", "rejected", "failed"];

let view = null; // {supabase, panel, projections}

const line = (label, text, testid) => el("p", testid ? { "data-testid": testid } : {},
  el("strong", {}, label), ` ${text}`);

// The app's projections (the gateway's catalog): the async ones are asked for by name, so
// that one that has not started yet is listed too; the inline ones have no lag to ask for.
async function projections() {
  try {
    const answer = await fetch("projections.json");
    if (!answer.ok) return [];
    return (await answer.json()).projections;
  } catch {
    return [];
  }
}

export async function show({ supabase, panel }) {
  polling.stop();
  view = { supabase, panel, projections: await projections() };
  panel.replaceChildren(el("div", { class: "health-report", "data-testid": "health" },
    "loading…"));
  polling.restart(panel);
}

export function onShown() {
  polling.resume();
}


async function refresh() {
  const consumers = view.projections.filter((p) => p.mode === "async").map((p) => p.consumer);
  const { data, error } = await view.supabase.rpc("console_health", { consumers });
  const report = view.panel.querySelector(".health-report");
  if (error) {
    report.replaceChildren(el("p", { class: "problem" },
      `health unavailable: ${error.hint ?? error.code ?? ""} ${error.message}`));
    return;
  }
  report.replaceChildren(...(data.scope === "system" ? systemReport(data) : tenantReport(data)));
}

function commandsLine(commands) {
  const counts = STATUSES.map((s) => `${s} ${(commands.by_status[s] ?? 0).toLocaleString()}`);
  return line("commands", `${counts.join("  ")}   oldest pending `
    + `${seconds(commands.oldest_pending_seconds)}   failed in the last hour `
    + `${commands.failed_last_hour}`, "health-commands");
}

function sagasLine(sagas) {
  const running = Object.entries(sagas.running).map(([saga, n]) => `${saga} ${n}`);
  const next = sagas.next_timer_at ? `   next timer ${sagas.next_timer_at}` : "";
  return line("sagas", `running ${running.length ? running.join(", ") : "none"}${next}`
    + `   completed in the last hour ${sagas.completed_last_hour}`, "health-sagas");
}

function tenantReport(data) {
  const notes = data.commands.failed_last_hour
    ? [`${data.commands.failed_last_hour} command(s) failed in the last hour`] : [];
  return [
    line("scope", `your tenant ${data.tenant_id}`, "health-scope"),
    commandsLine(data.commands),
    sagasLine(data.sagas),
    el("p", { class: "health-note" }, "System-wide health (batches, feed followers, the "
      + "held-back feed, the Realtime relay) is for operators: `intent operator grant EMAIL`."),
    attentionBlock(notes),
  ];
}

function systemReport(data) {
  const relay = data.consumers.find((c) => c.kind === "broadcast relay");
  const held = data.held_back_by;
  return [
    line("scope", "the whole system (you are an operator)", "health-scope"),
    line("feed head", data.feed_head ?? "-"),
    commandsLine(data.commands),
    sagasLine(data.sagas),
    ...stuckBlock(data),
    followersTable(data.consumers),
    line("Realtime relay", relay
      ? `${relay.lag_capped ? "≥ " : ""}${relay.lag_events.toLocaleString()} event(s) without `
        + `their broadcast, lag ${seconds(relay.lag_seconds)}`
      : "no checkpoint (is `intent relay` running?)", "health-relay"),
    line("held back by", held === null
      ? "nothing (no open transaction with an id)"
      : `transaction ${held.transaction_id} (pid ${held.pid}, ${held.state ?? "?"}, `
        + `${held.application ?? "-"}) for ${seconds(held.age_seconds)}: `
        + `${(held.query ?? "").trim().slice(0, 80)}`, "health-held-back"),
    attentionBlock(attention(data)),
  ];
}

function stuckBlock(data) {
  if (data.stuck_batches.length === 0) return [line("stuck batches", "none")];
  return [line("stuck batches", `(dispatched > ${data.stuck_after_seconds} s)`),
    el("ul", {}, ...data.stuck_batches.map((b) => el("li", {},
      `${b.batch_id}  ${b.command_count} command(s)  dispatched ${b.dispatches}x  `
      + `${seconds(b.age_seconds)}${b.last_error ? `   last error: ${errorText(b.last_error)}` : ""}`)))];
}

function followersTable(consumers) {
  const head = el("tr", {}, ...["consumer", "kind", "checkpoint", "lag events", "lag", "state"]
    .map((name) => el("th", {}, name)));
  const rows = consumers.map((c) => el("tr", { "data-consumer": c.consumer },
    ...[c.consumer, c.kind, c.checkpoint ?? "(not started)",
      `${c.lag_capped ? "≥ " : ""}${c.lag_events.toLocaleString()}`, seconds(c.lag_seconds),
      c.stopped ? `stopped: ${errorText(c.error)}` : "ok"].map((text) => el("td", {}, text))));
  for (const p of view.projections.filter((p) => p.mode === "inline")) {
    rows.push(el("tr", {}, ...[`projection:${p.name}@${p.version}`, "inline", "-", "-", "-",
      "in the command transaction"].map((text) => el("td", {}, text))));
  }
  return el("div", {}, el("h3", {}, "feed followers"),
    el("table", { class: "health-followers" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// What needs attention, as `intent status` says it (its default thresholds).
function attention(data) {
  const notes = [];
  if (data.stuck_batches.length) {
    notes.push(`${data.stuck_batches.length} batch(es) dispatched more than `
      + `${data.stuck_after_seconds} s ago and not finished`);
  }
  for (const c of data.consumers) {
    if (c.stopped) notes.push(`${c.consumer} is stopped by an error`);
    else if (c.kind === "broadcast relay" && c.lag_seconds > WARN_SECONDS) {
      notes.push(`Realtime is ${c.lag_seconds.toFixed(0)} s behind: ${c.lag_events} event(s) `
        + "without their broadcast (is `intent relay` running?)");
    }
  }
  const held = data.held_back_by;
  if (held && held.age_seconds > WARN_SECONDS) {
    notes.push(`transaction ${held.transaction_id} (pid ${held.pid}) has held the feed back `
      + `for ${held.age_seconds.toFixed(0)} s`);
  }
  if (data.commands.failed_last_hour) {
    notes.push(`${data.commands.failed_last_hour} command(s) failed in the last hour`);
  }
  return notes;
}

function attentionBlock(notes) {
  if (notes.length === 0) return el("p", { class: "health-ok", "data-testid": "health-attention" }, "all well");
  return el("div", { class: "health-attention", "data-testid": "health-attention" },
    el("strong", {}, "needs attention"), el("ul", {}, ...notes.map((n) => el("li", {}, n))));
}
