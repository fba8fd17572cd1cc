-- Events to Realtime (migration *_realtime_events.sql): every appended event becomes one
-- broadcast message on intent:tenant:<tenant> and one on
-- intent:aggregate:<tenant>:<aggregate_type>:<aggregate_id>, written into realtime.messages as
-- realtime.send writes them; the SELECT policy on realtime.messages lets an authenticated user
-- read only their own tenant's topics (with realtime.topic set, as Realtime sets it when it
-- authorises a join); intent.events is in the supabase_realtime publication.
--
-- Tenants and aggregates are fresh random UUIDs and every count is filtered by their topics,
-- so messages of other suites in the same cluster cannot change the answers.
begin;
select plan(39);
\ir _setup.psql

-- Fixtures ------------------------------------------------------------------------------------
select pg_temp.fresh_ids('tenant_a', 'tenant_b', 'agg_1', 'agg_2', 'agg_b');

create function pg_temp.tenant_topic(tenant text) returns text language sql as $$
  select 'intent:tenant:' || tenant
$$;

create function pg_temp.aggregate_topic(tenant text, agg text, type text default 'inventory.item')
returns text language sql as $$
  select 'intent:aggregate:' || tenant || ':' || type || ':' || agg
$$;

-- Messages on one topic, as the current role sees them with realtime.topic set to it.
create function pg_temp.visible(topic text) returns integer language plpgsql as $$
declare
  seen integer;
begin
  perform set_config('realtime.topic', topic, true);
  select count(*)::integer into seen from realtime.messages m where m.topic = visible.topic;
  perform set_config('realtime.topic', '', true);
  return seen;
end
$$;

-- All messages on one topic (as the table's owner side sees them: the test runs as postgres).
create function pg_temp.on_topic(topic text) returns setof realtime.messages language sql as $$
  select * from realtime.messages m where m.topic = on_topic.topic order by m.payload ->> 'version'
$$;

-- Structure -----------------------------------------------------------------------------------
select has_trigger('intent', 'events', 'events_broadcast', 'intent.events has events_broadcast');
select ok(
  (select t.tgtype & 1 = 0                  -- not FOR EACH ROW: statement-level
          and t.tgtype & 2 = 0              -- not BEFORE: AFTER
          and t.tgtype & 4 = 4              -- INSERT
          and t.tgtype & (8 | 16 | 32) = 0  -- not DELETE, UPDATE, TRUNCATE
          and t.tgnewtable = 'new_events'
     from pg_trigger t where t.tgrelid = 'intent.events'::regclass
      and t.tgname = 'events_broadcast'),
  'events_broadcast is a statement-level AFTER INSERT trigger with a transition table');
select is_definer('intent', 'broadcast_events', array[]::text[],
  'broadcast_events is SECURITY DEFINER (whoever appends, the broadcast can be written)');
select is(
  (select proconfig from pg_proc where oid = 'intent.broadcast_events()'::regprocedure),
  array['search_path=""'], 'broadcast_events pins an empty search_path');
select ok(
  not has_function_privilege('authenticated', 'intent.broadcast_events()', 'execute')
  and not has_function_privilege('anon', 'intent.broadcast_events()', 'execute'),
  'clients may not execute broadcast_events');

-- One append: two messages --------------------------------------------------------------------
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, schema_version, payload, metadata)
values (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'inventory.item',
        current_setting('test.agg_1')::uuid, 1, 'inventory.item_registered', 1,
        '{"sku": "A-1", "name": "bolt"}', '{"correlation_id": "c-1"}');

select is(
  (select count(*)::int from pg_temp.on_topic(pg_temp.tenant_topic(
     current_setting('test.tenant_a')))),
  1, 'one append: one message on the tenant topic');
select is(
  (select count(*)::int from pg_temp.on_topic(pg_temp.aggregate_topic(
     current_setting('test.tenant_a'), current_setting('test.agg_1')))),
  1, 'one append: one message on the aggregate topic');
select is(
  (select count(*)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  2, 'one append: two messages in all');

select set_config('test.message', (
  select to_jsonb(m) from pg_temp.on_topic(pg_temp.aggregate_topic(
    current_setting('test.tenant_a'), current_setting('test.agg_1'))) m)::text, true);
select is(current_setting('test.message')::jsonb ->> 'extension', 'broadcast',
  'the message is a broadcast (extension broadcast)');
select is((current_setting('test.message')::jsonb ->> 'private')::boolean, true,
  'the message is private');
select is(current_setting('test.message')::jsonb ->> 'event', 'inventory.item_registered',
  'the event name is the event type');
select is(
  (select array_agg(k order by k)
     from jsonb_object_keys(current_setting('test.message')::jsonb -> 'payload') k),
  array['aggregate_id', 'aggregate_type', 'event_id', 'event_type', 'id', 'metadata',
        'payload', 'position', 'recorded_at', 'schema_version', 'version'],
  'the payload is the event as load_aggregate gives it, with its aggregate and the message id');
select is(current_setting('test.message')::jsonb -> 'payload' ->> 'id',
  current_setting('test.message')::jsonb -> 'payload' ->> 'event_id',
  'payload.id is the event''s id');
select is(current_setting('test.message')::jsonb ->> 'id',
  current_setting('test.message')::jsonb -> 'payload' ->> 'event_id',
  'the aggregate topic''s message row has the event id as its id');
select results_eq(
  $q$select p ->> 'event_id', p ->> 'event_type', (p ->> 'schema_version')::int,
            p ->> 'aggregate_type', (p ->> 'aggregate_id')::uuid, (p ->> 'version')::int,
            (p ->> 'position')::bigint, p -> 'payload', p -> 'metadata',
            (p ->> 'recorded_at')::timestamptz
       from (select current_setting('test.message')::jsonb -> 'payload' as p) x$q$,
  $q$select event_id::text, event_type, schema_version, aggregate_type, aggregate_id, version,
            position, payload, metadata, recorded_at
       from intent.events
      where tenant_id = current_setting('test.tenant_a')::uuid
        and aggregate_id = current_setting('test.agg_1')::uuid$q$,
  'the payload carries the stored event exactly (ids, type, version, position, payload, metadata)');
select isnt(
  (select m.id from pg_temp.on_topic(pg_temp.tenant_topic(current_setting('test.tenant_a'))) m),
  (current_setting('test.message')::jsonb ->> 'id')::uuid,
  'the two messages have different ids');
select is(
  (select m.payload - 'id'
     from pg_temp.on_topic(pg_temp.tenant_topic(current_setting('test.tenant_a'))) m),
  (current_setting('test.message')::jsonb -> 'payload') - 'id'::text,
  'both topics carry the same event');

-- A multi-row insert: two messages per event --------------------------------------------------
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload)
select gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'inventory.item',
       case when v <= 3 then current_setting('test.agg_1')::uuid
            else current_setting('test.agg_2')::uuid end,
       case when v <= 3 then v else v - 3 end,
       'inventory.stock_received', jsonb_build_object('quantity', v)
  from generate_series(2, 5) as v;  -- agg_1 versions 2, 3; agg_2 versions 1, 2

select is(
  (select count(*)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  2 + 8, 'a 4-event insert adds 8 messages');
select is(
  (select array_agg((m.payload ->> 'version')::int order by (m.payload ->> 'position')::bigint)
     from pg_temp.on_topic(pg_temp.aggregate_topic(
       current_setting('test.tenant_a'), current_setting('test.agg_1'))) m),
  array[1, 2, 3], 'the first aggregate''s topic has its versions 1, 2, 3');
select is(
  (select array_agg((m.payload ->> 'version')::int order by (m.payload ->> 'position')::bigint)
     from pg_temp.on_topic(pg_temp.aggregate_topic(
       current_setting('test.tenant_a'), current_setting('test.agg_2'))) m),
  array[1, 2], 'the second aggregate''s topic has its versions 1, 2');
select is(
  (select count(*)::int from pg_temp.on_topic(pg_temp.tenant_topic(
     current_setting('test.tenant_a')))),
  5, 'the tenant topic has all 5 events');
select is(
  (select count(distinct id)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  10, 'every message has its own id');
select ok(
  (select bool_and(m.event = m.payload ->> 'event_type'
                   and m.payload ->> 'id' = m.payload ->> 'event_id')
     from realtime.messages m where m.topic like '%' || current_setting('test.tenant_a') || '%'),
  'every message: event = its event type, payload.id = its event id');

-- An insert of no rows broadcasts nothing
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload)
select gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'inventory.item',
       current_setting('test.agg_1')::uuid, 99, 'inventory.stock_received', '{}'
 where false;
select is(
  (select count(*)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  10, 'an insert of no rows broadcasts nothing');

-- A failing broadcast never fails the append ---------------------------------------------------
alter table realtime.messages add constraint test_refuse_all check (false) not valid;
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
                                       version, event_type, payload)
            values (gen_random_uuid(), %L, 'inventory.item', %L, 4,
                    'inventory.stock_received', '{"quantity": 1}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg_1')),
  'an append whose broadcast insert raises still succeeds (the error becomes a warning)');
select is(
  (select max(version) from intent.events
    where tenant_id = current_setting('test.tenant_a')::uuid
      and aggregate_id = current_setting('test.agg_1')::uuid),
  4, 'the event was appended');
select is(
  (select count(*)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  10, 'and no message was written for it');
alter table realtime.messages drop constraint test_refuse_all;

-- Tenant B's own event, to show B reads B's topics
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload)
values (gen_random_uuid(), current_setting('test.tenant_b')::uuid, 'inventory.item',
        current_setting('test.agg_b')::uuid, 1, 'inventory.item_registered', '{}');

-- Who reads which topic -----------------------------------------------------------------------
select policies_are('realtime', 'messages', array['intent_tenant_topics_read'],
  'the one policy on realtime.messages is Intent''s topic read policy');
select policy_roles_are('realtime', 'messages', 'intent_tenant_topics_read',
  array['authenticated'], 'it is for authenticated only (nothing for anon)');
select policy_cmd_is('realtime', 'messages', 'intent_tenant_topics_read', 'select',
  'it is a SELECT policy (no client may broadcast on intent topics)');

set local role authenticated;
select pg_temp.claims(gen_random_uuid()::text, current_setting('test.tenant_a'));
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_a'))), 5,
  'tenant A reads its tenant topic');
select is(pg_temp.visible(pg_temp.aggregate_topic(current_setting('test.tenant_a'),
                                                  current_setting('test.agg_1'))), 3,
  'tenant A reads its aggregate topic');
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_b'))), 0,
  'tenant A cannot read tenant B''s topic');

select pg_temp.claims(gen_random_uuid()::text, current_setting('test.tenant_b'));
select is(
  pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_a')))
  + pg_temp.visible(pg_temp.aggregate_topic(current_setting('test.tenant_a'),
                                            current_setting('test.agg_1'))),
  0, 'tenant B cannot read tenant A''s tenant or aggregate topic');
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_b'))), 1,
  'tenant B reads its own tenant topic');
select is(
  (select count(*)::int from (
     select set_config('realtime.topic', pg_temp.tenant_topic(current_setting('test.tenant_b')),
                       true)) s, realtime.messages m
    where m.topic like '%' || current_setting('test.tenant_a') || '%'),
  0, 'authorised for its own topic, tenant B still reads none of tenant A''s rows');

select pg_temp.claims(gen_random_uuid()::text, null);
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_a'))), 0,
  'a user without a tenant claim reads nothing');
reset role;

set local role anon;
select pg_temp.claims(gen_random_uuid()::text, current_setting('test.tenant_a'), 'anon');
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_a'))), 0,
  'anon reads nothing, even with a tenant claim');
reset role;

-- Postgres Changes ----------------------------------------------------------------------------
select ok(
  exists (select from pg_publication_tables
           where pubname = 'supabase_realtime' and schemaname = 'intent'
             and tablename = 'events'),
  'intent.events is in the supabase_realtime publication');

select * from finish();
rollback;
