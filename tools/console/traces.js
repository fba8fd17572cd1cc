// Traces: the causation tree of one correlation id, as `intent trace` prints it
// (tools/checks/trace.py: each node under its cause, never across tenants, children in time
// order), from public.console_trace: the caller's tenant's commands and events (an
// operator's: every tenant's). The correlation ids of the live events are offered to click.
import { el } from "./dom.js";

const RECENT = 8;

let view = null; // {supabase, panel, recent: [correlation id]}


export async function show({ supabase, panel }) {
  view = { supabase, panel, recent: [] };
  const input = el("input", { id: "trace-correlation", placeholder: "a correlation id",
    size: "40", "data-testid": "trace-correlation" });
  const form = el("form", { class: "controls", id: "trace-form" },
    el("label", {}, "Correlation ", input), el("button", { type: "submit" }, "Trace"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    trace(input.value.trim());
  });
  panel.replaceChildren(form,
    el("div", { class: "trace-recent", "data-testid": "trace-recent" }),
    el("div", { class: "trace-result", "data-testid": "trace-result" }));
}

export function onEvent(event) {
  const id = event.metadata?.correlation_id;
  if (!view || !id || view.recent.includes(id)) return;
  view.recent = [id, ...view.recent].slice(0, RECENT);
  const box = view.panel.querySelector(".trace-recent");
  box.replaceChildren(el("span", {}, "recent: "), ...view.recent.map((recent) => {
    const button = el("button", { type: "button", class: "trace-pick" }, recent);
    button.onclick = () => {
      view.panel.querySelector("#trace-correlation").value = recent;
      trace(recent);
    };
    return button;
  }));
}

async function trace(correlation) {
  const result = view.panel.querySelector(".trace-result");
  if (!correlation) return;
  result.replaceChildren(el("p", {}, "tracing…"));
  const { data, error } = await view.supabase.rpc("console_trace", { correlation_id: correlation });
  if (error) {
    result.replaceChildren(el("p", { class: "problem" },
      `${error.hint ?? error.code ?? "error"}: ${error.message}`));
    return;
  }
  const roots = link(data.nodes);
  if (roots.length === 0) {
    result.replaceChildren(el("p", {}, `nothing carries correlation id ${correlation}`
      + (data.scope === "tenant" ? " in your tenant" : "")));
    return;
  }
  const parts = [el("p", { class: "trace-summary" },
    `correlation ${data.correlation_id}: ${data.nodes.length} command(s) and event(s)`
    + (data.truncated ? " (the first 1,000 of each kind)" : ""))];
  let tenant = null;
  let list = null;
  for (const root of roots) {
    if (root.tenant_id !== tenant) {
      tenant = root.tenant_id;
      list = el("ul", { class: "trace-tree" });
      parts.push(el("p", { class: "trace-tenant" }, `tenant ${tenant}`), list);
    }
    list.append(item(root));
  }
  result.replaceChildren(...parts);
}

// Microseconds since the epoch (timestamps carry microseconds; Date keeps milliseconds).
function instant(at) {
  const fraction = /\.(\d+)/.exec(at)?.[1] ?? "";
  return Date.parse(at) * 1000 + Number(fraction.padEnd(6, "0").slice(3, 6));
}

function order(a, b) {
  return instant(a.at) - instant(b.at) || (a.version ?? 0) - (b.version ?? 0)
    || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// trace.py's link(): each node under its cause of the same tenant; the rest are roots, by
// tenant and then time.
export function link(nodes) {
  const byKey = new Map(nodes.map((node) => [`${node.tenant_id}/${node.id}`, { ...node, children: [] }]));
  const roots = [];
  for (const node of byKey.values()) {
    const parent = node.causation_id ? byKey.get(`${node.tenant_id}/${node.causation_id}`) : null;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  for (const node of byKey.values()) node.children.sort(order);
  return roots.sort((a, b) => (a.tenant_id < b.tenant_id ? -1 : a.tenant_id > b.tenant_id ? 1
    : order(a, b)));
}

// trace.py's _describe(): one node's line.
export function describe(node) {
  const at = new Date(instant(node.at) / 1000).toISOString().slice(11, 23);
  if (node.kind === "command") {
    const saga = node.user_id === null && node.causation_id !== null ? " (issued by a saga)" : "";
    const extra = node.error ? ` — ${typeof node.error === "object" ? JSON.stringify(node.error)
      : node.error}` : "";
    return `${at} command ${node.type} ${node.id} [${node.status}]${saga}${extra}`;
  }
  return `${at} event ${node.type} ${node.aggregate} v${node.version} ${node.id}`;
}

function item(node) {
  const li = el("li", { class: `trace-node trace-${node.kind}`, "data-id": node.id },
    el("span", {}, describe(node)));
  if (node.children.length) li.append(el("ul", {}, ...node.children.map(item)));
  return li;
}
