// The client scenario with supabase-js, unchanged, on Node 20 (with `ws` for Realtime).
// Reads its inputs from the INTENT_E2E environment variable (JSON) and prints one JSON
// object with what each step saw; the pytest side asserts on it.
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const input = JSON.parse(process.env.INTENT_E2E);
const client = (token) =>
  createClient(input.url, input.anonKey, {
    global: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
    realtime: { transport: WebSocket },
    auth: { persistSession: false, autoRefreshToken: false },
  });

// What a failed call looked like: the HTTP status and the body's stable code.
async function failure(error) {
  if (!error) return null;
  if (error.context && typeof error.context.status === "number") {
    const body = await error.context.json().catch(() => ({}));
    return { status: error.context.status, code: body?.error?.code ?? body?.code ?? null };
  }
  return { status: null, code: error.code ?? null };
}

async function statusOf(c, commandId) {
  for (let i = 0; i < 600; i++) {
    const { data } = await c.rpc("command_status", { command_id: commandId });
    if (data && ["processed", "rejected", "failed"].includes(data.status)) return data;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`command ${commandId} did not finish`);
}

const a = client(input.tokenA);
const b = client(input.tokenB);
const out = {};

const registered = await a.functions.invoke("command", {
  body: { type: "inventory.register_item", payload: { item_id: input.item, sku: "JS-1", name: "Widget" } },
});
out.registered = { status: registered.data?.status, error: await failure(registered.error) };
out.registeredFinal = (await statusOf(a, registered.data.commandId)).status;

const waited = await a.functions.invoke("command", {
  body: { type: "inventory.receive_stock", aggregateId: input.item, payload: { quantity: 5 }, wait: true },
});
out.waited = {
  status: waited.data?.status,
  events: (waited.data?.events ?? []).map((e) => e.event_type),
  error: await failure(waited.error),
};

const submitted = await a.rpc("submit_command", {
  command_type: "inventory.receive_stock",
  payload: { item_id: input.item, quantity: 2 },
});
out.submitted = (await statusOf(a, submitted.data.command_id)).status;

const hydrated = await a.rpc("load_aggregate", { aggregate_type: "inventory.item", aggregate_id: input.item });
out.hydrated = { version: hydrated.data?.version, versions: (hydrated.data?.events ?? []).map((e) => e.version) };

const rows = await a.from("stock_levels").select("sku, available").eq("item_id", input.item);
out.rows = rows.data;

// Tenant B, anon and bad tokens.
const foreign = await b.functions.invoke("command", {
  body: { type: "inventory.receive_stock", payload: { item_id: input.item, quantity: 1 } },
});
out.foreignCommand = await failure(foreign.error);
const foreignHydrate = await b.rpc("load_aggregate", { aggregate_type: "inventory.item", aggregate_id: input.item });
out.foreignHydrate = { version: foreignHydrate.data?.version, events: foreignHydrate.data?.events?.length };
out.foreignRows = (await b.from("stock_levels").select("*").eq("item_id", input.item)).data;

out.refused = {};
for (const [who, token] of [["anon", null], ["forged", input.forged], ["expired", input.expired]]) {
  const c = client(token);
  const viaFunction = await c.functions.invoke("command", {
    body: { type: "inventory.receive_stock", payload: { item_id: input.item, quantity: 1 } },
  });
  const viaRpc = await c.rpc("submit_command", {
    command_type: "inventory.receive_stock",
    payload: { item_id: input.item, quantity: 1 },
  });
  const viaTable = await c.from("stock_levels").select("*");
  out.refused[who] = {
    function: await failure(viaFunction.error),
    rpc: { status: viaRpc.status, code: viaRpc.error?.code ?? null },
    table: { status: viaTable.status, code: viaTable.error?.code ?? null },
  };
}

console.log(JSON.stringify(out));
