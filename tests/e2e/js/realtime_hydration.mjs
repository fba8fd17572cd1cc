// Live aggregates with supabase-js on Node 20: tools/client/hydration.ts (compiled by the test
// into a temp folder, passed as `library`) against the gateway's Realtime and the real
// pipeline. Reads its inputs from INTENT_E2E (JSON), runs one mode and prints one JSON object
// with what it saw; the pytest side asserts on it.
//   follow   a client hydrates an item and follows version by version (source broadcast or
//            postgres_changes) while a colleague of the same tenant sends commands
//   foreign  a tenant-B user is refused tenant A's private topic and gets no Postgres Changes
//   gap      the socket drops while events are appended; the client hydrates again
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const input = JSON.parse(process.env.INTENT_E2E);
const { LiveAggregate } = await import(input.library);
const ITEM = "inventory.item";

// The user's token through `accessToken` (supabase-js's option for JWTs it did not issue):
// REST, functions and Realtime all use it, also when the socket reconnects. A global
// Authorization header would not reach Realtime, which falls back to the anon key then.
const client = (token) =>
  createClient(input.url, input.anonKey, {
    accessToken: async () => token,
    realtime: { transport: WebSocket },
  });

const a = client(input.tokenA);
const colleague = client(input.tokenColleague);
const b = client(input.tokenB);
const item = input.item;
const versions = (state, event) => [...state, event.version];
const fromSnapshot = (snapshot) => Array.from({ length: snapshot.version }, (_, i) => i + 1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function command(body) {
  const { data, error } = await colleague.functions.invoke("command", { body: { ...body, wait: true } });
  if (error || data?.status !== "processed") {
    throw new Error(`command ${body.type} failed: ${error?.message ?? JSON.stringify(data)}`);
  }
}
const register = () =>
  command({ type: "inventory.register_item", payload: { item_id: item, sku: `JS-${item.slice(0, 6)}`, name: "Live" } });
const receive = (quantity) =>
  command({ type: "inventory.receive_stock", aggregateId: item, payload: { quantity } });

const out = {};
try {
  await register();
  if (input.mode === "follow") {
    const changes = [];
    const live = new LiveAggregate(a, ITEM, item, {
      evolve: versions, initial: [], fromSnapshot, accessToken: input.tokenA, source: input.source,
      onChange: (l) => changes.push(l.version),
    });
    await live.start();
    out.started = { version: live.version, hydrations: live.hydrations };
    out.followed = [];
    for (const expected of [2, 3, 4]) {
      await receive(expected);
      await live.waitFor(expected, input.followMs);
      out.followed.push(live.version);
    }
    out.state = live.state;
    out.changes = changes;
    out.hydrations = live.hydrations;
    await live.stop();
  } else if (input.mode === "foreign") {
    const intruder = new LiveAggregate(b, ITEM, item, {
      evolve: versions, initial: [], accessToken: input.tokenB, tenantId: input.tenantA,
    });
    out.joinError = await intruder.start(input.followMs).then(() => "joined", (e) => String(e.message));

    let spyChanges = 0;
    await b.realtime.setAuth(input.tokenB);
    const subscribed = new Promise((resolve) => {
      b.channel(`spy:${item}`)
        .on("postgres_changes", { event: "INSERT", schema: "intent", table: "events", filter: `aggregate_id=eq.${item}` },
          () => { spyChanges += 1; })
        .on("system", {}, () => resolve())
        .subscribe();
    });
    await subscribed;
    const watcher = new LiveAggregate(a, ITEM, item, {
      evolve: versions, initial: [], accessToken: input.tokenA, source: "postgres_changes",
    });
    await watcher.start();
    await receive(1);
    await watcher.waitFor(2, input.followMs);
    await sleep(300); // B's push, were there one, goes out in the same batch as A's
    out.watcher = watcher.state;
    out.spyChanges = spyChanges;
    await watcher.stop();
  } else if (input.mode === "gap") {
    const live = new LiveAggregate(a, ITEM, item, {
      evolve: versions, initial: [], fromSnapshot, accessToken: input.tokenA,
    });
    await live.start();
    await receive(2);
    await live.waitFor(2, input.followMs);
    await a.realtime.disconnect(); // the socket goes; the channel stays and will rejoin
    for (let i = 0; i < 100 && a.realtime.isConnected(); i++) await sleep(10);
    for (const quantity of [3, 4, 5]) await receive(quantity);
    out.whileDown = live.version;
    a.realtime.connect();
    await live.waitFor(5, input.followMs);
    await receive(6);
    await live.waitFor(6, input.followMs);
    out.state = live.state;
    out.hydrations = live.hydrations;
    await live.stop();
  } else {
    throw new Error(`unknown mode ${input.mode}`);
  }
} finally {
  for (const c of [a, colleague, b]) await c.removeAllChannels();
}
console.log(JSON.stringify(out));
process.exit(0);
