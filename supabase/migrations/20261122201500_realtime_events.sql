-- Events to Supabase Realtime: Broadcast from Database (the default path) and Postgres Changes.
--
-- Topics (all private: a client joins them with `{config: {private: true}}` and must pass the
-- SELECT policy on realtime.messages below):
--
--   intent:tenant:<tenant_id>                                      every event of a tenant
--   intent:aggregate:<tenant_id>:<aggregate_type>:<aggregate_id>  one aggregate's events
--
-- e.g. intent:aggregate:1b4e28ba-2fa1-11d2-883f-0016d3cca427:inventory.item:6f1c...; ids are
-- lower-case UUID text, aggregate_type as stored (it never contains ':').
-- Every appended event becomes one message on each of its two topics, with the event name =
-- the event type and the payload
--
--   {event_id, event_type, schema_version, aggregate_type, aggregate_id, version, position,
--    payload, metadata, recorded_at, id}
--
-- i.e. an event exactly as public.load_aggregate returns it, plus its aggregate, and `id`.
-- `id` is the event's id on both topics, and the aggregate topic's message row has the event
-- id as its own id (event ids are unique); the tenant topic's row gets a random id.
-- realtime.send would put a fresh message id into every payload: building one JSON body per
-- message instead of one per event cost a third of the trigger's time (measured: 200 messages
-- from 100 events, 7.3 ms with a body per message, 4.9 ms with one body per event; the rows
-- themselves, with an empty payload, 2.6 ms). Clients apply events by `version` and hydrate
-- again when they see a gap (tools/client/).
--
-- Rows are written the way realtime.send writes them (extension 'broadcast', private, payload
-- with an `id`), but set-based: one statement-level AFTER INSERT trigger with a transition table
-- and one INSERT ... SELECT per append statement. A per-row realtime.send pays a function call,
-- a savepoint and a single-row insert for every event. A broadcast must never make an append
-- fail (hosted realtime.send turns its errors into warnings): on hosted projects
-- realtime.messages is partitioned by day and an insert for a day without a partition raises,
-- and a missing privilege or a changed realtime schema would raise too. So the insert runs in
-- an exception block that turns any error into a WARNING (one subtransaction per append
-- statement, none for a statement that appended nothing). Query cancellation is not an error
-- here and still cancels the append, as it should.
--
-- Reading: authenticated users may read (join, receive) only their own tenant's intent:
-- topics, and only the rows of the topic being authorised; anon nothing. No INSERT policy:
-- clients cannot broadcast on these topics, so every message on them comes from an append.
--
-- Postgres Changes: intent.events joins the supabase_realtime publication; Realtime delivers a
-- change only to subscribers who may SELECT the row, so the events table's tenant policy
-- applies. Broadcast is the documented default (one policy check per join, not per change).

-- The broadcast trigger -----------------------------------------------------------------------
create or replace function intent.broadcast_events() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A statement that appended nothing (a lost expected-version race) broadcasts nothing.
  if not exists (select from new_events) then
    return null;
  end if;
  begin
    insert into realtime.messages (id, topic, extension, event, payload, private)
    select case when t.per_aggregate then e.event_id else pg_catalog.gen_random_uuid() end,
           t.topic, 'broadcast', e.event_type, e.body, true
      from (select ev.event_id, ev.tenant_id, ev.aggregate_type, ev.aggregate_id,
                   ev.event_type,
                   pg_catalog.jsonb_build_object(
                     'event_id', ev.event_id,
                     'event_type', ev.event_type,
                     'schema_version', ev.schema_version,
                     'aggregate_type', ev.aggregate_type,
                     'aggregate_id', ev.aggregate_id,
                     'version', ev.version,
                     'position', ev.position,
                     'payload', ev.payload,
                     'metadata', ev.metadata,
                     'recorded_at', ev.recorded_at,
                     'id', ev.event_id) as body
              from new_events ev
            offset 0  -- kept as a subquery: each body is built once, for both topics
           ) e
     cross join lateral (
       values (false, 'intent:tenant:' || e.tenant_id::text),
              (true, 'intent:aggregate:' || e.tenant_id::text || ':' || e.aggregate_type || ':'
                     || e.aggregate_id::text)
     ) as t(per_aggregate, topic);
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
  return null;
end
$$;

-- Owned by postgres (bypasses RLS, may insert into realtime.messages) whoever appends.
alter function intent.broadcast_events() owner to postgres;
revoke all on function intent.broadcast_events() from public, anon, authenticated;
comment on function intent.broadcast_events() is
  'Statement-level AFTER INSERT trigger on intent.events: one Realtime broadcast message per '
  'event on intent:tenant:<tenant> and intent:aggregate:<tenant>:<type>:<id>; errors become '
  'warnings, never a failed append.';

drop trigger if exists events_broadcast on intent.events;
create trigger events_broadcast
  after insert on intent.events
  referencing new table as new_events
  for each statement execute function intent.broadcast_events();

-- Who may read which topic --------------------------------------------------------------------
drop policy if exists intent_tenant_topics_read on realtime.messages;
create policy intent_tenant_topics_read on realtime.messages
  for select to authenticated
  using (
    -- The row belongs to the topic being authorised (Realtime sets it for the check) ...
    topic = (select realtime.topic())
    -- ... and that topic is one of the caller's tenant's.
    and ((select realtime.topic()) = 'intent:tenant:' || (select intent.current_tenant_id())::text
         or starts_with((select realtime.topic()),
                        'intent:aggregate:' || (select intent.current_tenant_id())::text || ':'))
  );
comment on policy intent_tenant_topics_read on realtime.messages is
  'Intent: an authenticated user reads only their own tenant''s intent:tenant:<tenant> and '
  'intent:aggregate:<tenant>:... topics (tenant from app_metadata.tenant_id).';

-- Postgres Changes on intent.events -----------------------------------------------------------
do $$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    raise warning 'publication supabase_realtime is missing: Postgres Changes on intent.events '
      'will not work until it exists and includes the table';
  elsif not exists (select from pg_catalog.pg_publication_tables
                     where pubname = 'supabase_realtime'
                       and schemaname = 'intent' and tablename = 'events') then
    alter publication supabase_realtime add table intent.events;
  end if;
end
$$;
