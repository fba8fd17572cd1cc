// Sign-in with supabase-js, unchanged, on Node 20 against the local gateway's /auth/v1 (a
// development stand-in for GoTrue): signUp, signInWithPassword, getUser, refreshSession,
// signOut, the onAuthStateChange events, and the session's token used for rpc and
// functions.invoke. Inputs come as JSON in INTENT_E2E; prints one JSON object.
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const input = JSON.parse(process.env.INTENT_E2E);
const options = {
  realtime: { transport: WebSocket },
  auth: { persistSession: false, autoRefreshToken: false },
};
const supabase = createClient(input.url, input.anonKey, options);
const admin = createClient(input.url, input.serviceKey, options);
const out = { events: [] };
supabase.auth.onAuthStateChange((event) => out.events.push(event));
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

const signedUp = await supabase.auth.signUp({
  email: input.email, password: input.password, options: { data: { name: "Js" } },
});
out.signUp = {
  error: signedUp.error?.message ?? null,
  email: signedUp.data.user?.email,
  metadata: signedUp.data.user?.user_metadata,
  hasSession: Boolean(signedUp.data.session?.access_token),
};
const again = await supabase.auth.signUp({ email: input.email, password: input.password });
out.duplicate = { code: again.error?.code, status: again.error?.status };
const weak = await supabase.auth.signUp({ email: `weak-${input.email}`, password: "abc" });
out.weak = { code: weak.error?.code, name: weak.error?.name, reasons: weak.error?.reasons };
const wrong = await supabase.auth.signInWithPassword({ email: input.email, password: "nope-nope" });
out.wrongPassword = { code: wrong.error?.code, status: wrong.error?.status };

// An admin cannot hand out a tenant: the hook takes it from memberships only.
const userId = signedUp.data.user.id;
const updated = await admin.auth.admin.updateUserById(userId, { app_metadata: { tenant_id: input.tenant } });
out.adminUpdate = { error: updated.error?.message ?? null };

const signedIn = await supabase.auth.signInWithPassword({ email: input.email, password: input.password });
const first = claimsOf(signedIn.data.session.access_token);
out.signIn = { error: signedIn.error?.message ?? null, sub: first.sub, tenant: first.app_metadata?.tenant_id ?? null };
const user = await supabase.auth.getUser();
out.getUser = { error: user.error?.message ?? null, id: user.data.user?.id };

// The user creates their tenant (a command; the token has no tenant yet), then refreshes.
const created = await supabase.functions.invoke("command", {
  body: { type: "tenancy.create_tenant", payload: { tenant_id: input.tenant, name: "Js's" }, wait: true },
});
out.create = { status: created.data?.status ?? null, error: created.error?.message ?? null };

const refreshed = await supabase.auth.refreshSession();
const token = refreshed.data.session.access_token;
out.refresh = {
  error: refreshed.error?.message ?? null,
  rotated: refreshed.data.session.refresh_token !== signedIn.data.session.refresh_token,
  tenant: claimsOf(token).app_metadata?.tenant_id,
  role: claimsOf(token).app_metadata?.tenant_role,
};

// The client uses the session's token for the API by itself.
const status = await supabase.rpc("command_status", { command_id: crypto.randomUUID() });
out.rpc = { status: status.status, error: status.error?.message ?? null };
const invoked = await supabase.functions.invoke("command", {
  body: { type: "inventory.register_item", payload: { item_id: input.item, sku: "AUTH-JS", name: "Signed in" }, wait: true },
});
out.invoke = { status: invoked.data?.status ?? null, error: invoked.error?.message ?? null };

const signedOut = await supabase.auth.signOut();
out.signOut = { error: signedOut.error?.message ?? null };
const reuse = await supabase.auth.refreshSession({ refresh_token: refreshed.data.session.refresh_token });
out.afterSignOut = { code: reuse.error?.code ?? null };

const listed = await admin.auth.admin.listUsers({ page: 1, perPage: 1000 });
out.listed = listed.data.users.some((u) => u.id === userId);
const deleted = await admin.auth.admin.deleteUser(userId);
out.deleted = deleted.error?.message ?? null;

console.log(JSON.stringify(out));
process.exit(0);
