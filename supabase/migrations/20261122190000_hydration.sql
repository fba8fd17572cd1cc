-- Hydration: how a client rebuilds an aggregate from the event store.
--
--   public.load_aggregate(aggregate_type, aggregate_id)
--     -> {aggregate_type, aggregate_id, snapshot: {version, schema_version, state} | null,
--         events: [...the events after the snapshot, in version order], version, next_version}
--   public.read_stream(aggregate_type, aggregate_id, from_version = 1, max_count = 100)
--     -> {aggregate_type, aggregate_id, from_version, events: [...], version, next_version}
--
-- Each event is {event_id, event_type, schema_version, version, payload, metadata,
-- recorded_at, position}, exactly as stored: payloads are not upcast here, the client does
-- that with the event's schema_version. `version` is the stream's head (0 when the stream
-- is empty or not visible). `next_version` is null when the answer reaches the head, else
-- the version to continue from with read_stream (pages and the hydration tail are capped
-- at 1,000 events, so one call never builds an unbounded document).
--
-- Both run as the caller (SECURITY INVOKER), so the RLS policies of intent.events and
-- intent.snapshots apply; the explicit tenant filter also keeps roles that bypass RLS
-- (service_role) to their token's tenant, as command_status does, and lets the unique
-- (tenant_id, aggregate_type, aggregate_id, version) index serve every read. Another
-- tenant's aggregate therefore looks like an empty stream, never like an error. `anon`
-- may not call either.
--
-- Refusals: SQLSTATE PT400 (PostgREST answers HTTP 400) with the stable code in HINT:
--   invalid_page   from_version < 1, or max_count outside 1..1000
--   malformed      aggregate_type or aggregate_id missing

-- read_stream ---------------------------------------------------------------------------------
create or replace function public.read_stream(
  aggregate_type text,
  aggregate_id uuid,
  from_version integer default 1,
  max_count integer default 100
) returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  max_page constant integer := 1000;
  caller_tenant uuid := intent.current_tenant_id();
  page jsonb;
  fetched integer;
  last_version integer;
  head integer;
begin
  if read_stream.aggregate_type is null or read_stream.aggregate_id is null then
    raise exception using
      errcode = 'PT400',
      message = 'aggregate_type and aggregate_id are required.',
      hint = 'malformed';
  end if;
  if read_stream.from_version is null or read_stream.from_version < 1 then
    raise exception using
      errcode = 'PT400',
      message = 'from_version must be a version >= 1.',
      hint = 'invalid_page';
  end if;
  if read_stream.max_count is null or read_stream.max_count < 1
     or read_stream.max_count > max_page then
    raise exception using
      errcode = 'PT400',
      message = pg_catalog.format('max_count must be between 1 and %s.', max_page),
      hint = 'invalid_page';
  end if;

  select coalesce(
           pg_catalog.jsonb_agg(
             pg_catalog.jsonb_build_object(
               'event_id', e.event_id,
               'event_type', e.event_type,
               'schema_version', e.schema_version,
               'version', e.version,
               'payload', e.payload,
               'metadata', e.metadata,
               'recorded_at', e.recorded_at,
               'position', e.position)
             order by e.version),
           '[]'::jsonb),
         pg_catalog.count(*)::integer,
         pg_catalog.max(e.version)
    into page, fetched, last_version
    from (select ev.event_id, ev.event_type, ev.schema_version, ev.version, ev.payload,
                 ev.metadata, ev.recorded_at, ev.position
            from intent.events ev
           where ev.tenant_id = caller_tenant
             and ev.aggregate_type = read_stream.aggregate_type
             and ev.aggregate_id = read_stream.aggregate_id
             and ev.version >= read_stream.from_version
           order by ev.version
           limit read_stream.max_count) e;

  select pg_catalog.max(ev.version) into head
    from intent.events ev
   where ev.tenant_id = caller_tenant
     and ev.aggregate_type = read_stream.aggregate_type
     and ev.aggregate_id = read_stream.aggregate_id;

  return pg_catalog.jsonb_build_object(
    'aggregate_type', read_stream.aggregate_type,
    'aggregate_id', read_stream.aggregate_id,
    'from_version', read_stream.from_version,
    'events', page,
    'version', coalesce(head, 0),
    'next_version', case when fetched > 0 and last_version < head then last_version + 1 end);
end
$$;

alter function public.read_stream(text, uuid, integer, integer) owner to postgres;
revoke all on function public.read_stream(text, uuid, integer, integer) from public, anon;
grant execute on function public.read_stream(text, uuid, integer, integer)
  to authenticated, service_role;
comment on function public.read_stream(text, uuid, integer, integer) is
  'A page of one of the caller''s tenant''s streams, by version: {aggregate_type, '
  'aggregate_id, from_version, events, version (the head), next_version (null at the head)}. '
  'max_count is 1..1000 (PT400 invalid_page otherwise).';

-- load_aggregate ------------------------------------------------------------------------------
create or replace function public.load_aggregate(aggregate_type text, aggregate_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  max_tail constant integer := 1000;
  caller_tenant uuid := intent.current_tenant_id();
  snap record;
  tail jsonb;
begin
  if load_aggregate.aggregate_type is null or load_aggregate.aggregate_id is null then
    raise exception using
      errcode = 'PT400',
      message = 'aggregate_type and aggregate_id are required.',
      hint = 'malformed';
  end if;

  -- The newest snapshot (a backward walk of the primary key), then the events after it.
  select s.version, s.schema_version, s.state into snap
    from intent.snapshots s
   where s.tenant_id = caller_tenant
     and s.aggregate_type = load_aggregate.aggregate_type
     and s.aggregate_id = load_aggregate.aggregate_id
   order by s.version desc
   limit 1;

  tail := public.read_stream(load_aggregate.aggregate_type, load_aggregate.aggregate_id,
                             coalesce(snap.version, 0) + 1, max_tail);

  return pg_catalog.jsonb_build_object(
    'aggregate_type', load_aggregate.aggregate_type,
    'aggregate_id', load_aggregate.aggregate_id,
    'snapshot', case when snap.version is not null then
                  pg_catalog.jsonb_build_object('version', snap.version,
                                                'schema_version', snap.schema_version,
                                                'state', snap.state)
                end,
    'events', tail -> 'events',
    'version', greatest((tail ->> 'version')::integer, coalesce(snap.version, 0)),
    'next_version', tail -> 'next_version');
end
$$;

alter function public.load_aggregate(text, uuid) owner to postgres;
revoke all on function public.load_aggregate(text, uuid) from public, anon;
grant execute on function public.load_aggregate(text, uuid) to authenticated, service_role;
comment on function public.load_aggregate(text, uuid) is
  'One of the caller''s tenant''s aggregates for hydration: {aggregate_type, aggregate_id, '
  'snapshot: {version, schema_version, state} | null, events after the snapshot, version, '
  'next_version}; an aggregate the caller cannot see is an empty stream.';
