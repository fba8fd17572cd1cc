// Live aggregates for supabase-js: hydrate with load_aggregate, follow the private Realtime
// topic, apply events in version order, hydrate again after a gap or a reconnect.
// The TypeScript twin of tools/client/hydration.py and stream.py (same rules, same names).
//
//   const live = new LiveAggregate(supabase, "inventory.item", itemId, {
//     accessToken, evolve: (state, event) => ..., initial: {}, onChange: (l) => render(l.state),
//   });
//   await live.start();   // joins intent:aggregate:<tenant>:<type>:<id>, then hydrates
//   ...
//   await live.stop();
//
// The client must give Realtime the user's token on every (re)connect: a signed-in
// supabase.auth session does, and so does createClient(url, anonKey, { accessToken: async () =>
// token }) for tokens supabase-js did not issue. A global Authorization header does not: when
// the socket reconnects, supabase-js sends the anon key and the private topic refuses it.
// Only types are imported from supabase-js, so the compiled file runs wherever the caller's
// client comes from.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";

export const DEFAULT_GRACE_MS = 500; // how long a version jump may wait to fill

export interface StreamEvent {
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  version: number;
  position: number;
  schema_version: number;
  payload: Record<string, unknown>;
  metadata: Record<string, unknown>;
  recorded_at: string | null;
}

type Json = Record<string, unknown>;

/** An event from a broadcast payload, an intent.events row or a load_aggregate event. */
export function eventFromJson(data: Json, aggregateType?: string, aggregateId?: string): StreamEvent {
  return {
    event_id: String(data.event_id),
    event_type: String(data.event_type),
    aggregate_type: String(data.aggregate_type ?? aggregateType),
    aggregate_id: String(data.aggregate_id ?? aggregateId),
    version: Number(data.version),
    position: Number(data.position),
    schema_version: Number(data.schema_version ?? 1),
    payload: (data.payload as Json | undefined) ?? {},
    metadata: (data.metadata as Json | undefined) ?? {},
    recorded_at: data.recorded_at == null ? null : String(data.recorded_at),
  };
}

export type Offer = "applied" | "duplicate" | "buffered" | "foreign";

/** The pure rules: a state at a version, buffered events, and when a jump becomes a gap. */
export class StreamState<S> {
  state: S;
  version = 0;
  hydrating = true;
  hydrations = 0;
  pending = new Map<number, StreamEvent>();
  waitingSince: number | null = null;

  constructor(
    readonly aggregateType: string,
    readonly aggregateId: string,
    readonly evolve: (state: S, event: StreamEvent) => S,
    initial: S,
    readonly graceMs: number = DEFAULT_GRACE_MS,
  ) {
    this.state = initial;
  }

  offer(event: StreamEvent, now: number): [Offer, StreamEvent[]] {
    if (event.aggregate_type !== this.aggregateType || event.aggregate_id !== this.aggregateId) {
      return ["foreign", []];
    }
    if (event.version <= this.version || this.pending.has(event.version)) return ["duplicate", []];
    this.pending.set(event.version, event);
    if (this.hydrating) return ["buffered", []];
    const applied = this.drain();
    if (this.pending.size > 0 && this.waitingSince === null) this.waitingSince = now;
    return applied.length > 0 ? ["applied", applied] : ["buffered", []];
  }

  dueAt(): number | null {
    return this.hydrating || this.waitingSince === null ? null : this.waitingSince + this.graceMs;
  }

  overdue(now: number): boolean {
    const due = this.dueAt();
    return due !== null && now >= due;
  }

  beginHydration(): void {
    this.hydrating = true;
    this.waitingSince = null;
  }

  finishHydration(state: S, version: number, now: number): StreamEvent[] {
    this.state = state;
    this.version = version;
    this.hydrating = false;
    this.hydrations += 1;
    for (const v of [...this.pending.keys()]) if (v <= version) this.pending.delete(v);
    const applied = this.drain();
    this.waitingSince = this.pending.size > 0 ? now : null;
    return applied;
  }

  private drain(): StreamEvent[] {
    const applied: StreamEvent[] = [];
    for (let next = this.pending.get(this.version + 1); next; next = this.pending.get(this.version + 1)) {
      this.pending.delete(next.version);
      this.state = this.evolve(this.state, next);
      this.version = next.version;
      applied.push(next);
    }
    if (applied.length > 0) this.waitingSince = null;
    return applied;
  }
}

/** State and version from a load_aggregate answer plus the read_stream pages after it. */
export function foldHydration<S>(
  answer: Json,
  pages: Json[],
  evolve: (state: S, event: StreamEvent) => S,
  initial: S,
  fromSnapshot: (snapshot: Json) => S,
): [S, number] {
  const snapshot = answer.snapshot as Json | null;
  let state = snapshot ? fromSnapshot(snapshot) : initial;
  let version = snapshot ? Number(snapshot.version) : 0;
  for (const part of [answer, ...pages]) {
    for (const raw of (part.events as Json[] | undefined) ?? []) {
      const event = eventFromJson(raw, String(answer.aggregate_type), String(answer.aggregate_id));
      if (event.version !== version + 1) {
        throw new Error(`hydration is not contiguous: version ${event.version} after ${version}`);
      }
      state = evolve(state, event);
      version = event.version;
    }
  }
  return [state, version];
}

export const tenantTopic = (tenant: string) => `intent:tenant:${tenant}`;
export const aggregateTopic = (tenant: string, type: string, id: string) =>
  `intent:aggregate:${tenant}:${type}:${id}`;

/** The tenant claim of a user's JWT (read, not verified: the server verifies on join). */
export function tenantOf(accessToken: string): string {
  const body = accessToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const padded = body + "=".repeat((4 - (body.length % 4)) % 4);
  const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))));
  const tenant = claims?.app_metadata?.tenant_id;
  if (typeof tenant !== "string") throw new Error("the token has no app_metadata.tenant_id claim");
  return tenant;
}

export interface LiveOptions<S> {
  evolve: (state: S, event: StreamEvent) => S;
  initial: S;
  fromSnapshot?: (snapshot: Json) => S;
  accessToken?: string;
  tenantId?: string;
  onChange?: (live: LiveAggregate<S>) => void;
  source?: "broadcast" | "postgres_changes";
  graceMs?: number;
}

/** One aggregate's state, hydrated and kept current from Realtime. */
export class LiveAggregate<S> {
  readonly topic: string;
  readonly tenantId: string;
  private readonly stream: StreamState<S>;
  private channel: RealtimeChannel | null = null;
  private hydration: Promise<void> | null = null;
  private again = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private joinedOnce = false;
  private stopped = false;

  constructor(
    readonly client: SupabaseClient,
    readonly aggregateType: string,
    readonly aggregateId: string,
    readonly options: LiveOptions<S>,
  ) {
    const tenant = options.tenantId ?? (options.accessToken ? tenantOf(options.accessToken) : null);
    if (!tenant) throw new Error("pass tenantId or the user's accessToken");
    this.tenantId = tenant;
    this.topic = aggregateTopic(tenant, aggregateType, aggregateId);
    this.stream = new StreamState(aggregateType, aggregateId, options.evolve, options.initial,
      options.graceMs ?? DEFAULT_GRACE_MS);
  }

  get state(): S { return this.stream.state; }
  get version(): number { return this.stream.version; }
  get hydrations(): number { return this.stream.hydrations; }
  get stale(): boolean { return this.stream.hydrating || this.stream.waitingSince !== null; }

  /** Join the topic (rejects when refused, e.g. another tenant's topic), then hydrate. */
  async start(joinMs = 10_000): Promise<void> {
    if (this.options.accessToken) await this.client.realtime.setAuth(this.options.accessToken);
    const source = this.options.source ?? "broadcast";
    let settle: { ok: () => void; fail: (e: Error) => void } | null = null;
    const first = new Promise<void>((ok, fail) => { settle = { ok, fail }; });
    const live = () => {
      if (!this.joinedOnce) { this.joinedOnce = true; settle!.ok(); }
      else this.rehydrate();
    };
    let channel: RealtimeChannel;
    if (source === "broadcast") {
      channel = this.client.channel(this.topic, { config: { private: true } })
        .on("broadcast", { event: "*" }, (message) => this.offer(eventFromJson(message.payload as Json)));
    } else {
      channel = this.client.channel(`intent-changes:${this.topic}`)
        .on("postgres_changes",
          { event: "INSERT", schema: "intent", table: "events", filter: `aggregate_id=eq.${this.aggregateId}` },
          (change) => this.offer(eventFromJson(change.new as Json)))
        // Postgres Changes are live at the server's system message, not at the join reply.
        .on("system", {}, (message: Json) => { if (message.extension === "postgres_changes") live(); });
    }
    this.channel = channel;
    channel.subscribe((status, error) => {
      if (status === "SUBSCRIBED") {
        if (source === "broadcast") live();
      } else if (!this.joinedOnce) {
        settle!.fail(new Error(`${status}: ${error?.message ?? ""}`));
      } else if (!this.stopped) {
        this.stream.beginHydration(); // stale until the next join hydrates
      }
    });
    const timeout = setTimeout(() => settle!.fail(new Error("join timed out")), joinMs);
    try {
      await first;
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      clearTimeout(timeout);
    }
    // Registered, so that a reconnect meanwhile queues behind it instead of racing it.
    this.hydration = this.hydrateNow().finally(() => { this.hydration = null; });
    await this.hydration;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.channel) {
      const channel = this.channel;
      this.channel = null;
      await this.client.removeChannel(channel);
    }
  }

  /** Resolves once the state has reached `version` (rejects after `ms`). */
  waitFor(version: number, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        if (this.version >= version && !this.stale) resolve();
        else if (Date.now() - started > ms) reject(new Error(`still at version ${this.version}`));
        else setTimeout(check, 10);
      };
      check();
    });
  }

  private offer(event: StreamEvent): void {
    const [outcome] = this.stream.offer(event, Date.now());
    if (outcome === "applied") this.notify();
    this.armTimer();
  }

  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const due = this.stream.dueAt();
    if (due === null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stream.overdue(Date.now())) this.rehydrate();
    }, Math.max(0, due - Date.now()));
  }

  private rehydrate(): void {
    if (this.stopped) return;
    if (this.hydration) { this.again = true; return; }
    this.hydration = this.hydrateNow().finally(() => { this.hydration = null; });
  }

  private async hydrateNow(): Promise<void> {
    let loaded: [S, number];
    for (;;) {
      this.again = false;
      this.stream.beginHydration();
      try {
        loaded = await this.load();
      } catch (e) {
        if (this.stopped) return;
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!this.again) break;
    }
    this.stream.finishHydration(loaded[0], loaded[1], Date.now());
    this.armTimer();
    this.notify();
  }

  private async load(): Promise<[S, number]> {
    const args = { aggregate_type: this.aggregateType, aggregate_id: this.aggregateId };
    const { data, error } = await this.client.rpc("load_aggregate", args);
    if (error) throw error;
    const answer = data as Json;
    const pages: Json[] = [];
    for (let next = answer.next_version as number | null; next != null;) {
      const page = await this.client.rpc("read_stream", { ...args, from_version: next, max_count: 1000 });
      if (page.error) throw page.error;
      pages.push(page.data as Json);
      next = (page.data as Json).next_version as number | null;
    }
    return foldHydration(answer, pages, this.options.evolve, this.options.initial,
      this.options.fromSnapshot ?? ((snapshot) => snapshot.state as S));
  }

  private notify(): void {
    if (!this.stale) this.options.onChange?.(this);
  }
}
