-- The console's operations views: health (what `intent status` says), read models (each
-- projection's checkpoint and lag) and traces (what `intent trace` prints; those functions
-- are in 20261208040150_console_traces.sql), as RPCs.
--
--   public.console_health(stuck_after_seconds default 60, consumers text[] default null)
--                                                             -> jsonb, as `intent status --json`
--   public.console_read_models(consumers text[] default null) -> jsonb, one entry per projection
--   public.console_trace(correlation_id uuid)                -> jsonb, the flat nodes of a trace
--
-- Who sees what. Platform operators (intent.operators, managed with `intent operator grant|
-- revoke|list`; not a tenant role) see the whole system: `scope` is "system". Anyone else
-- sees only the tenant of their token (intent.current_tenant_id()), `scope` "tenant": their
-- tenant's command counts and saga instances, the lag of each projection counted over their
-- own events only,
-- no error text (a consumer's or batch's error may quote another tenant's event), no stuck
-- batches, no feed head and nothing of pg_stat_activity. A trace shows the caller's tenant's
-- commands and events (an operator's: every tenant's).
--
-- The functions are SECURITY DEFINER, owned by postgres (which bypasses RLS and reads
-- pg_stat_activity as pg_read_all_stats), so each one filters by the caller itself, from the
-- verified JWT only. Executable by `authenticated`, never by anon. Everything is bounded:
-- lag is counted over at most 100,000 feed entries after a checkpoint (as the lag gauges
-- do), at most 200 consumers and 100 stuck batches are listed, a trace returns at most 1,000
-- commands and 1,000 events (`truncated` says when more exist). A trace filters the
-- commands and events by the correlation id in their metadata as `intent trace` does: no
-- index serves it (one would cost every append), so it reads the tables.
--
-- Refusals: SQLSTATE PTnnn (PostgREST answers HTTP nnn) with the stable code in HINT:
--   invalid_claims  PT401  the JWT's sub claim is not a UUID
--   no_tenant       PT401  not an operator, and the JWT carries no app_metadata.tenant_id
--   malformed       PT400  an argument is missing or out of its range
-- A correlation id that is not a UUID is PostgreSQL's own 22P02 (HTTP 400).

-- Operators -----------------------------------------------------------------------------
-- Platform operators by auth user id. No client may read or write it (RLS on, forced, no
-- policy, no grant); `intent operator` writes it as the database owner.
create table intent.operators (
  user_id uuid primary key,
  granted_at timestamptz not null default now()
);
alter table intent.operators enable row level security;
alter table intent.operators force row level security;
revoke all on intent.operators from public, anon, authenticated, service_role;
comment on table intent.operators is
  'Platform operators (auth user ids): the console''s system-wide views are theirs. '
  'Managed with `intent operator grant|revoke|list`.';

create or replace function intent.caller_is_operator() returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  caller uuid;
begin
  begin
    caller := auth.uid();
  exception when invalid_text_representation then
    return false;  -- an unusable sub is nobody
  end;
  return caller is not null
     and auth.role() = 'authenticated'
     and exists (select 1 from intent.operators o where o.user_id = caller);
end
$$;

alter function intent.caller_is_operator() owner to postgres;
revoke all on function intent.caller_is_operator() from public, anon;
grant execute on function intent.caller_is_operator() to authenticated;
comment on function intent.caller_is_operator() is
  'Whether the verified JWT''s user (sub, role authenticated) is a platform operator.';

-- Who is asking: an operator, or the tenant of the token; anyone else is refused.
create or replace function intent.console_caller(out operator boolean, out tenant_id uuid)
language plpgsql
stable
set search_path = ''
as $$
begin
  begin
    perform auth.uid();
  exception when invalid_text_representation then
    raise exception using
      errcode = 'PT401',
      message = 'The access token''s claims are unusable: sub must be a UUID.',
      hint = 'invalid_claims';
  end;
  operator := intent.caller_is_operator();
  tenant_id := intent.current_tenant_id();
  if not operator and tenant_id is null then
    raise exception using
      errcode = 'PT401',
      message = 'The access token carries no tenant (app_metadata.tenant_id); the console '
                'shows a tenant''s data to its members, and the whole system to operators.',
      hint = 'no_tenant';
  end if;
end
$$;

alter function intent.console_caller() owner to postgres;
revoke all on function intent.console_caller() from public, anon, authenticated;

-- Lag ------------------------------------------------------------------------------------
-- Events after a feed point (a checkpoint; '0'/0 for a consumer without one: the whole feed),
-- over at most p_cap feed entries in feed order, so the work is bounded whatever the backlog.
-- With p_tenant only that tenant's events are counted (the window is the same), so a
-- tenant's figure says nothing of the others' volume; `capped` says the window was full.
create or replace function intent.console_lag(
  p_after_xid xid8, p_after_position bigint, p_tenant uuid, p_cap integer default 100000,
  out events bigint, out capped boolean, out seconds double precision)
language plpgsql
stable
set search_path = ''
as $$
begin
  select pg_catalog.count(*) filter (where p_tenant is null or w.tenant_id = p_tenant),
         pg_catalog.count(*) >= p_cap,
         coalesce(extract(epoch from pg_catalog.now() - pg_catalog.min(w.recorded_at)
                  filter (where p_tenant is null or w.tenant_id = p_tenant)), 0)::float8
    into events, capped, seconds
    from (select e.tenant_id, e.recorded_at
            from intent.events e
           where (e.transaction_id, e.position) > (p_after_xid, p_after_position)
           order by e.transaction_id, e.position  -- the feed index
           limit p_cap) w;
end
$$;

alter function intent.console_lag(xid8, bigint, uuid, integer) owner to postgres;
revoke all on function intent.console_lag(xid8, bigint, uuid, integer)
  from public, anon, authenticated;

create or replace function intent.console_consumer_kind(p_consumer text) returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_consumer = 'saga_router' then 'saga router'
    when p_consumer = 'intent.realtime_relay' then 'broadcast relay'
    when p_consumer like 'projection:%' and p_consumer like '%:rebuild%' then 'rebuild'
    when p_consumer like 'projection:%' then 'projection'
    else 'other'
  end
$$;

alter function intent.console_consumer_kind(text) owner to postgres;
revoke all on function intent.console_consumer_kind(text) from public, anon, authenticated;

-- Feed followers: the checkpoints (all of them, or the projections' only) and the consumers
-- named in p_wanted that have none yet, each with its lag (counted once per feed point, so
-- naming many consumers costs no more than one). Operators also get the error and
-- when the checkpoint last moved; others see `stopped` only, and only projections.
create or replace function intent.console_consumers(
  p_operator boolean, p_tenant uuid, p_wanted text[], p_projections_only boolean)
returns jsonb
language sql
stable
set search_path = ''
as $$
  with names as (
    select k.consumer from intent.checkpoints k
     where not p_projections_only or k.consumer like 'projection:%'
    union
    select w.name from pg_catalog.unnest(coalesce(p_wanted, '{}'::text[])) w(name)
  ), listed as (
    select n.consumer, intent.console_consumer_kind(n.consumer) as kind
      from names n
     where p_operator or intent.console_consumer_kind(n.consumer) = 'projection'
     order by n.consumer limit 200
  ), starts as (  -- one lag per feed point, however many consumers share it
    select distinct l.kind = 'broadcast relay' and p_operator as relay,
           coalesce(k.transaction_id, '0'::xid8) as after_xid,
           coalesce(k.position, 0) as after_position
      from listed l left join intent.checkpoints k on k.consumer = l.consumer
  ), lags as materialized (  -- computed once, before the join
    select s.relay, s.after_xid, s.after_position, g.events, g.capped, g.seconds
      from starts s
     cross join lateral (
       select b.waiting_events as events, b.capped,
              extract(epoch from b.oldest_waiting)::float8 as seconds
         from intent.broadcast_lag(100000) b
        where s.relay
       union all
       select x.events, x.capped, x.seconds
         from intent.console_lag(s.after_xid, s.after_position,
                                 case when p_operator then null else p_tenant end) x
        where not s.relay) g
  )
  select coalesce(pg_catalog.jsonb_agg(
           pg_catalog.jsonb_build_object(
             'consumer', l.consumer,
             'kind', l.kind,
             'checkpoint', k.transaction_id::text || '/' || k.position::text,
             'lag_events', lag.events,
             'lag_capped', lag.capped,
             'lag_seconds', lag.seconds,
             'stopped', k.error is not null)
           || case when p_operator then pg_catalog.jsonb_build_object(
                'error', k.error,
                'updated_seconds_ago', extract(epoch from pg_catalog.now() - k.updated_at))
              else '{}'::jsonb end
           order by l.consumer), '[]'::jsonb)
    from listed l
    left join intent.checkpoints k on k.consumer = l.consumer
    join lags lag on lag.relay = (l.kind = 'broadcast relay' and p_operator)
                 and lag.after_xid = coalesce(k.transaction_id, '0'::xid8)
                 and lag.after_position = coalesce(k.position, 0)
$$;

alter function intent.console_consumers(boolean, uuid, text[], boolean) owner to postgres;
revoke all on function intent.console_consumers(boolean, uuid, text[], boolean)
  from public, anon, authenticated;

-- Commands -------------------------------------------------------------------------------
-- By status, the oldest pending one's age and the failures of the last hour: of one tenant,
-- or (p_tenant null) of the system.
create or replace function intent.console_commands(p_tenant uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'by_status', (
      select pg_catalog.jsonb_object_agg(s.status, coalesce(n.count, 0) order by s.ord)
        from (values ('pending', 1), ('dispatched', 2), ('processed', 3), ('rejected', 4),
                     ('failed', 5)) s(status, ord)
        left join (
          select c.status, pg_catalog.count(*) as count from intent.commands c
           where p_tenant is null or c.tenant_id = p_tenant
           group by c.status) n on n.status = s.status),
    'oldest_pending_seconds', (
      select extract(epoch from pg_catalog.now() - pg_catalog.min(c.created_at))::float8
        from intent.commands c
       where c.status = 'pending' and (p_tenant is null or c.tenant_id = p_tenant)),
    'failed_last_hour', (
      select pg_catalog.count(*) from intent.commands c
       where c.status = 'failed' and c.updated_at > pg_catalog.now() - interval '1 hour'
         and (p_tenant is null or c.tenant_id = p_tenant)))
$$;

alter function intent.console_commands(uuid) owner to postgres;
revoke all on function intent.console_commands(uuid) from public, anon, authenticated;

-- Sagas ----------------------------------------------------------------------------------
-- Running instances by saga and the soonest timer, from intent.saga_instances (the workflows
-- record themselves there; *_saga_instances.sql): of one tenant, or (p_tenant null) all.
create or replace function intent.console_sagas(p_tenant uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'running', coalesce((
      select pg_catalog.jsonb_object_agg(r.saga, r.count order by r.saga)
        from (select i.saga, pg_catalog.count(*) as count from intent.saga_instances i
               where i.status = 'running' and (p_tenant is null or i.tenant_id = p_tenant)
               group by i.saga) r), '{}'::jsonb),
    'next_timer_at', (
      select pg_catalog.min(i.next_timer_at) from intent.saga_instances i
       where i.status = 'running' and (p_tenant is null or i.tenant_id = p_tenant)),
    'completed_last_hour', (
      select pg_catalog.count(*) from intent.saga_instances i
       where i.status = 'completed' and i.updated_at > pg_catalog.now() - interval '1 hour'
         and (p_tenant is null or i.tenant_id = p_tenant)))
$$;

alter function intent.console_sagas(uuid) owner to postgres;
revoke all on function intent.console_sagas(uuid) from public, anon, authenticated;

-- The system-wide part of the health report: stuck batches, followers, the held-back feed
-- (the oldest open transaction with an id, from pg_stat_activity) and the feed's head.
create or replace function intent.console_system_health(p_stuck_after interval,
                                                        p_wanted text[]) returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'stuck_batches', (
      select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'batch_id', b.batch_id, 'command_count', b.command_count,
               'dispatches', b.dispatches,
               'age_seconds', extract(epoch from pg_catalog.now() - b.updated_at)::float8,
               'last_error', b.last_error) order by b.updated_at), '[]'::jsonb)
        from (select * from intent.batches x
               where x.status = 'dispatched' and x.updated_at < pg_catalog.now() - p_stuck_after
               order by x.updated_at limit 100) b),
    'consumers', intent.console_consumers(true, null, p_wanted, false),
    'held_back_by', (
      select pg_catalog.jsonb_build_object(
               'pid', a.pid, 'transaction_id', a.backend_xid::text,
               'age_seconds', coalesce(extract(epoch from pg_catalog.now() - a.xact_start), 0)
                              ::float8,
               'state', a.state, 'application', nullif(a.application_name, ''),
               'query', pg_catalog.left(a.query, 200))
        from pg_catalog.pg_stat_activity a
       where a.backend_xid is not null and a.pid <> pg_catalog.pg_backend_pid()
       order by pg_catalog.age(a.backend_xid) desc
       limit 1),
    'feed_head', (
      select e.transaction_id::text || '/' || e.position::text from intent.events e
       order by e.transaction_id desc, e.position desc limit 1))
$$;

alter function intent.console_system_health(interval, text[]) owner to postgres;
revoke all on function intent.console_system_health(interval, text[])
  from public, anon, authenticated;

-- The RPCs -------------------------------------------------------------------------------
-- The consumers a caller names (the app's async projections, which the database cannot list
-- before their first page): at most 64 names of the form projection:<name>@<version>.
create or replace function intent.console_check_consumers(p_consumers text[]) returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if pg_catalog.cardinality(p_consumers) > 64 or exists (
       select 1 from pg_catalog.unnest(p_consumers) w(name)
        where w.name is null
           or w.name !~ '^projection:[a-z_][a-z0-9_]{0,62}@[1-9][0-9]{0,8}$') then
    raise exception using
      errcode = 'PT400',
      message = 'consumers must be at most 64 names of the form projection:<name>@<version>.',
      hint = 'malformed';
  end if;
end
$$;

alter function intent.console_check_consumers(text[]) owner to postgres;
revoke all on function intent.console_check_consumers(text[]) from public, anon, authenticated;

create or replace function public.console_health(stuck_after_seconds double precision default 60,
                                                 consumers text[] default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  caller record;
  report jsonb;
begin
  select * into caller from intent.console_caller();
  if stuck_after_seconds is null or not (stuck_after_seconds between 0 and 604800) then
    raise exception using
      errcode = 'PT400',
      message = 'stuck_after_seconds must be a number of seconds from 0 to 604800.',
      hint = 'malformed';
  end if;
  perform intent.console_check_consumers(consumers);
  report := pg_catalog.jsonb_build_object(
    'scope', case when caller.operator then 'system' else 'tenant' end,
    'tenant_id', caller.tenant_id,
    'stuck_after_seconds', stuck_after_seconds,
    'commands', intent.console_commands(
                  case when caller.operator then null else caller.tenant_id end),
    'sagas', intent.console_sagas(
               case when caller.operator then null else caller.tenant_id end));
  if caller.operator then
    report := report || intent.console_system_health(
                          pg_catalog.make_interval(secs => stuck_after_seconds), consumers);
  end if;
  return report;
end
$$;

alter function public.console_health(double precision, text[]) owner to postgres;
revoke all on function public.console_health(double precision, text[]) from public, anon;
grant execute on function public.console_health(double precision, text[]) to authenticated;
comment on function public.console_health(double precision, text[]) is
  'What `intent status` says, for the console: an operator''s is the system''s (commands, '
  'stuck batches, feed followers with their lag and errors, the held-back feed, the feed '
  'head; scope "system"); anyone else''s is their tenant''s command counts (scope "tenant"). '
  '`consumers` names the app''s async projections, listed also before their first page.';

create or replace function public.console_read_models(consumers text[] default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  caller record;
begin
  select * into caller from intent.console_caller();
  perform intent.console_check_consumers(consumers);
  return pg_catalog.jsonb_build_object(
    'scope', case when caller.operator then 'system' else 'tenant' end,
    'consumers', intent.console_consumers(caller.operator, caller.tenant_id, consumers, true));
end
$$;

alter function public.console_read_models(text[]) owner to postgres;
revoke all on function public.console_read_models(text[]) from public, anon;
grant execute on function public.console_read_models(text[]) to authenticated;
comment on function public.console_read_models(text[]) is
  'The async projections'' checkpoints (and those named in `consumers` that have none yet), '
  'each with its lag; for a non-operator the lag counts only their tenant''s events and the '
  'error is only `stopped`.';
