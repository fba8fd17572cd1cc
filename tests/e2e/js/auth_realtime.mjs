// A signed-in supabase-js client (session from /auth/v1, not a minted token) on its tenant's
// private Realtime topic, across token refreshes: the client hands each new token to
// Realtime itself (TOKEN_REFRESHED -> realtime.setAuth), and events keep arriving.
// Inputs come as JSON in INTENT_E2E; prints one JSON object.
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const input = JSON.parse(process.env.INTENT_E2E);
const supabase = createClient(input.url, input.anonKey, {
  realtime: { transport: WebSocket },
  auth: { persistSession: false, autoRefreshToken: false },
});
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
const out = { received: [] };
const send = async (type, payload) => {
  const { data, error } = await supabase.functions.invoke("command", { body: { type, payload, wait: true } });
  return data?.status ?? `error: ${error?.message}`;
};

await supabase.auth.signUp({ email: input.email, password: input.password });
out.created = await send("tenancy.create_tenant", { tenant_id: input.tenant, name: "Live" });
const first = await supabase.auth.refreshSession();
out.tenant = claimsOf(first.data.session.access_token).app_metadata?.tenant_id;

// Realtime has the session's token once the refresh's TOKEN_REFRESHED was handled.
await supabase.realtime.setAuth();
const waiting = new Map();
const channel = supabase.channel(`intent:tenant:${input.tenant}`, { config: { private: true } })
  .on("broadcast", { event: "*" }, ({ payload }) => {
    if (payload?.event_type !== "inventory.item_registered") return;
    out.received.push(payload.aggregate_id);
    waiting.get(payload.aggregate_id)?.();
  });
out.joined = await new Promise((resolve) => {
  channel.subscribe((status, error) => {
    if (status === "SUBSCRIBED") resolve(status);
    else if (status !== "CLOSED") resolve(`${status}: ${error?.message ?? ""}`);
  });
});
const seen = (id) => new Promise((resolve) => {
  const timer = setTimeout(() => resolve(false), 15_000);
  waiting.set(id, () => { clearTimeout(timer); resolve(true); });
});

for (const [round, item] of input.items.entries()) {
  if (round > 0) {
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a new iat: a new token
    const refreshed = await supabase.auth.refreshSession();
    out[`refresh${round}`] = refreshed.error?.message ?? "ok";
    // The client passed the new token to Realtime by itself (its auth listener).
    await new Promise((resolve) => setTimeout(resolve, 50));
    out[`realtimeToken${round}`] = supabase.realtime.accessTokenValue === refreshed.data.session.access_token
      && refreshed.data.session.access_token !== first.data.session.access_token;
  }
  const arrived = seen(item);
  out[`sent${round}`] = await send("inventory.register_item", { item_id: item, sku: `LIVE-${round}`, name: "Live" });
  out[`arrived${round}`] = await arrived;
}
out.channelState = channel.state;
await supabase.removeChannel(channel);
console.log(JSON.stringify(out));
process.exit(0);
