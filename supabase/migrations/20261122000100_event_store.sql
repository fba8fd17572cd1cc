-- The event store: commands in, events (the source of truth), snapshots, and the
-- checkpoints of the consumers that follow the global feed.
--
-- Tenancy: every tenant-owned row has tenant_id, and clients see only rows whose tenant_id
-- equals the JWT claim app_metadata.tenant_id (see intent.current_tenant_id). app_metadata
-- is set by the service, never by the user, so a client cannot choose its tenant.
-- Clients never write here directly: commands come in through the ingress RPC, events are
-- appended by the worker (a role that bypasses RLS).

create schema if not exists intent;
revoke all on schema intent from public;
grant usage on schema intent to authenticated, service_role;

-- The tenant of the verified JWT, or null when the claim is absent or not a UUID (a null
-- tenant matches no row, so a malformed token sees nothing rather than failing loudly).
create or replace function intent.current_tenant_id() returns uuid
language sql stable
set search_path = ''
as $$
  select case
    when (auth.jwt() -> 'app_metadata' ->> 'tenant_id')
         ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    then (auth.jwt() -> 'app_metadata' ->> 'tenant_id')::uuid
  end
$$;
revoke all on function intent.current_tenant_id() from public;
grant execute on function intent.current_tenant_id() to authenticated, service_role;

-- Events ---------------------------------------------------------------------------------
create table intent.events (
  -- Global position: taken at INSERT, visible at COMMIT, so readers of the global feed order
  -- by (transaction_id, position) and stay below the oldest open transaction (see pump/feed).
  position bigint generated always as identity primary key,
  transaction_id xid8 not null default pg_current_xact_id(),
  event_id uuid not null,
  tenant_id uuid not null,
  aggregate_type text not null,
  aggregate_id uuid not null,
  version integer not null,
  event_type text not null,
  schema_version integer not null default 1,
  payload jsonb not null,
  metadata jsonb not null default '{}'::jsonb,
  recorded_at timestamptz not null default now(),
  -- The real concurrency control: one event per stream version, whoever writes it.
  constraint events_stream_version_key unique (tenant_id, aggregate_type, aggregate_id, version),
  constraint events_event_id_key unique (event_id),
  constraint events_version_positive check (version > 0),
  constraint events_schema_version_positive check (schema_version > 0),
  constraint events_payload_is_object check (jsonb_typeof(payload) = 'object'),
  constraint events_metadata_is_object check (jsonb_typeof(metadata) = 'object'),
  constraint events_type_names check (
    aggregate_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'
    and event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'
  )
);
create index events_feed_idx on intent.events (transaction_id, position);

-- Append-only: a fact once recorded is never edited or removed in place (forgetting a
-- person is done by crypto-shredding their payloads, not by deleting events).
create or replace function intent.refuse_event_change() returns trigger
language plpgsql
as $$
begin
  raise exception 'events are immutable: % on intent.events is not allowed', tg_op
    using errcode = 'restrict_violation';
end
$$;
revoke all on function intent.refuse_event_change() from public;
-- Statement-level, so appends pay nothing for it.
create trigger events_immutable
  before update or delete or truncate on intent.events
  for each statement execute function intent.refuse_event_change();

-- Snapshots ------------------------------------------------------------------------------
create table intent.snapshots (
  tenant_id uuid not null,
  aggregate_type text not null,
  aggregate_id uuid not null,
  version integer not null,
  schema_version integer not null,
  state jsonb not null,
  created_at timestamptz not null default now(),
  primary key (tenant_id, aggregate_type, aggregate_id, version),
  constraint snapshots_version_positive check (version > 0),
  constraint snapshots_schema_version_positive check (schema_version > 0),
  constraint snapshots_state_is_object check (jsonb_typeof(state) = 'object')
);

-- Commands -------------------------------------------------------------------------------
create table intent.commands (
  command_id uuid primary key,
  -- Submission order: commands on one aggregate are decided in this order.
  seq bigint generated always as identity,
  tenant_id uuid not null,
  user_id uuid,
  role text not null,
  command_type text not null,
  aggregate_type text,
  aggregate_id uuid,
  payload jsonb not null,
  metadata jsonb not null default '{}'::jsonb,
  status text not null default 'pending',
  batch_id uuid,
  attempts integer not null default 0,
  result jsonb,
  error jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint commands_seq_key unique (seq),
  constraint commands_status_known check (
    status in ('pending', 'dispatched', 'processed', 'rejected', 'failed')
  ),
  constraint commands_payload_is_object check (jsonb_typeof(payload) = 'object'),
  constraint commands_metadata_is_object check (jsonb_typeof(metadata) = 'object')
);
create index commands_pending_idx on intent.commands (seq) where status = 'pending';
create index commands_tenant_idx on intent.commands (tenant_id, created_at);

-- Checkpoints of the global-feed consumers (projections, the saga router) ----------------
-- Not tenant-owned: one row per consumer, written in the same transaction as its effects.
create table intent.checkpoints (
  consumer text primary key,
  transaction_id xid8 not null default '0'::xid8,
  position bigint not null default 0,
  error jsonb,
  updated_at timestamptz not null default now()
);

-- Row-level security: enabled and forced everywhere -------------------------------------
alter table intent.events enable row level security;
alter table intent.events force row level security;
alter table intent.snapshots enable row level security;
alter table intent.snapshots force row level security;
alter table intent.commands enable row level security;
alter table intent.commands force row level security;
alter table intent.checkpoints enable row level security;
alter table intent.checkpoints force row level security;

create policy events_tenant_read on intent.events
  for select to authenticated
  using (tenant_id = (select intent.current_tenant_id()));
create policy snapshots_tenant_read on intent.snapshots
  for select to authenticated
  using (tenant_id = (select intent.current_tenant_id()));
create policy commands_tenant_read on intent.commands
  for select to authenticated
  using (tenant_id = (select intent.current_tenant_id()));
-- checkpoints: no client policy at all; only roles that bypass RLS see them.

-- Grants: explicit, because hosted projects no longer grant on new tables by default.
revoke all on intent.events, intent.snapshots, intent.commands, intent.checkpoints
  from public, anon, authenticated;
grant select on intent.events, intent.snapshots, intent.commands to authenticated;
grant all on intent.snapshots, intent.commands, intent.checkpoints to service_role;
-- service_role may read and append events, but not choose position or transaction_id: the
-- feed's order depends on both being the database's own.
grant select on intent.events to service_role;
grant insert (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
              schema_version, payload, metadata, recorded_at) on intent.events to service_role;
