// The `command` edge function: validated commands into the SQL ingress, as the caller.
// Deploy with `supabase functions deploy command` (verify_jwt = true in config.toml).
import { handlerFromEnv } from "./main.ts";

Deno.serve(handlerFromEnv((name) => Deno.env.get(name)));
