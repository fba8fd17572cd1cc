// Read models: each projection of the application (its catalog, from the gateway's
// /console/projections.json) with the rows the signed-in user may read (supabase-js under
// RLS, as an app reads them), and, for an async one, its checkpoint, lag and state from
// public.console_read_models. For a tenant's user the lag counts their own events only and a
// stopped projection says "stopped"; an operator also sees the error. Refreshed every 2 s
// while the tab is open.
import { el, errorText, poller, seconds } from "./dom.js";

const REFRESH_MS = 2000;
const polling = poller(() => refresh(), REFRESH_MS);
const MAX_ROWS = 50;

let view = null; // {supabase, panel, catalog}




async function catalogOf() {
  try {
    const answer = await fetch("projections.json");
    const body = await answer.json();
    return answer.ok ? { projections: body.projections } : { problem: body.message };
  } catch {
    return { problem: "the projection catalog comes from Intent's gateway (/console/projections.json)" };
  }
}

export async function show({ supabase, panel }) {
  polling.stop();
  view = { supabase, panel, catalog: await catalogOf() };
  panel.replaceChildren(el("p", { class: "read-models-scope" }, "loading…"));
  const list = el("div", { class: "read-models-list" });
  for (const projection of view.catalog.projections ?? []) list.append(card(projection));
  if (view.catalog.problem) list.append(el("p", { class: "problem" }, view.catalog.problem));
  panel.append(list);
  polling.restart(panel);
}

export function onShown() {
  polling.resume();
}


function card(projection) {
  const article = el("article", { class: "read-model", "data-projection": projection.name },
    el("h3", {}, `${projection.name} v${projection.version} `,
      el("span", { class: "read-model-mode" }, projection.mode)),
    el("p", { class: "read-model-state", "data-testid": `read-model-state-${projection.name}` },
      projection.mode === "inline"
        ? "inline: written in the command's transaction (no checkpoint, no lag)"
        : "checkpoint …"));
  for (const table of projection.tables) {
    article.append(el("h4", {}, `${projection.schema}.${table.name}`),
      el("div", { class: "read-model-rows", "data-table": table.name }));
  }
  return article;
}

async function refresh() {
  const { supabase, panel, catalog } = view;
  const projections = catalog.projections ?? [];
  const consumers = projections.filter((p) => p.mode === "async").map((p) => p.consumer);
  const { data, error } = await supabase.rpc("console_read_models", { consumers });
  const scope = panel.querySelector(".read-models-scope");
  if (error) {
    scope.textContent = `checkpoints unavailable: ${error.hint ?? error.code ?? ""} ${error.message}`;
  } else {
    scope.textContent = data.scope === "system"
      ? "operator: checkpoints and lag of the whole system; rows as your token reads them"
      : "your tenant: rows under RLS, lag counted over your tenant's events only";
  }
  const byConsumer = new Map((data?.consumers ?? []).map((c) => [c.consumer, c]));
  for (const projection of projections) {
    const article = panel.querySelector(`article[data-projection="${projection.name}"]`);
    if (!article) continue;
    if (projection.mode === "async") {
      article.querySelector(".read-model-state").textContent =
        stateLine(byConsumer.get(projection.consumer));
    }
    for (const table of projection.tables) {
      const box = article.querySelector(`.read-model-rows[data-table="${table.name}"]`);
      box.replaceChildren(await rowsOf(supabase, projection, table));
    }
  }
}

function stateLine(consumer) {
  if (!consumer) return "checkpoint unknown";
  const lag = `${consumer.lag_capped ? "≥ " : ""}${consumer.lag_events.toLocaleString()}`;
  const state = !consumer.stopped ? "ok"
    : consumer.error !== undefined ? `stopped: ${errorText(consumer.error)}` : "stopped";
  return `checkpoint ${consumer.checkpoint ?? "(not started)"} · lag ${lag} event(s), `
    + `${seconds(consumer.lag_seconds)} · ${state}`;
}

async function rowsOf(supabase, projection, table) {
  if (!projection.readers.includes("authenticated")) {
    return el("p", { class: "read-model-note" },
      `not readable by signed-in users (readers: ${projection.readers.join(", ")})`);
  }
  const client = projection.schema === "public" ? supabase : supabase.schema(projection.schema);
  const { data, error } = await client.from(table.name).select("*").limit(MAX_ROWS);
  if (error) return el("p", { class: "problem" }, `${error.code ?? "error"}: ${error.message}`);
  if (data.length === 0) return el("p", { class: "read-model-note" }, "no rows");
  const names = table.columns.map((c) => c.name);
  for (const key of Object.keys(data[0])) if (!names.includes(key)) names.push(key);
  const head = el("tr", {}, ...names.map((name) => el("th", {}, name)));
  const body = data.map((row) => el("tr", {}, ...names.map((name) => el("td", {},
    row[name] === null || row[name] === undefined ? ""
      : typeof row[name] === "object" ? JSON.stringify(row[name]) : String(row[name])))));
  const more = data.length === MAX_ROWS ? `the first ${MAX_ROWS} rows` : `${data.length} row(s)`;
  return el("div", {}, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)),
    el("p", { class: "read-model-note" }, more));
}
