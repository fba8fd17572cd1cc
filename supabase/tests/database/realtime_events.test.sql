-- Events to Realtime (migrations *_realtime_events.sql and *_broadcast_relay.sql): the relay,
-- intent.relay_broadcasts(), turns every committed event into one broadcast message on
-- intent:tenant:<tenant> and one on intent:aggregate:<tenant>:<aggregate_type>:<aggregate_id>,
-- written into realtime.messages as realtime.send writes them, and moves its checkpoint; an
-- append itself writes no message. The SELECT policy on realtime.messages lets an
-- authenticated user read only their own tenant's topics (with realtime.topic set, as Realtime
-- sets it when it authorises a join); intent.events is in the supabase_realtime publication.
--
-- The relay never reads an open transaction's events (the suite's own neither), so unlike the
-- other suites this one commits its events (fresh random tenants, so other suites' rows cannot
-- change its counts; events are immutable and stay), relays them, and checks the rest in a
-- transaction that rolls back. Its ids are session settings for that reason. The events it
-- commits are valid envelopes of a type of its own (pgtap.probe), which no projection or saga
-- reads: whatever follows the feed of the same database reads them too.
begin;
select plan(48);
\ir _setup.psql

select set_config('test.' || n, gen_random_uuid()::text, false)
  from unnest(array['tenant_a', 'tenant_b', 'agg_1', 'agg_2', 'agg_3', 'agg_b']) n;

create function pg_temp.tenant_topic(tenant text) returns text language sql as $$
  select 'intent:tenant:' || tenant
$$;

create function pg_temp.aggregate_topic(tenant text, agg text, type text default 'pgtap.probe')
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

-- An event's metadata as the store writes it (feed readers parse every envelope).
create function pg_temp.metadata(tenant text) returns jsonb language sql as $$
  select jsonb_build_object('tenant_id', tenant, 'correlation_id', gen_random_uuid())
$$;

-- Messages of tenant A's topics.
create function pg_temp.tenant_a_messages() returns integer language sql as $$
  select count(*)::integer from realtime.messages
   where topic like '%' || current_setting('test.tenant_a') || '%'
$$;

-- Relay until a call finds nothing (one transaction: every event committed before it).
create function pg_temp.relay_all() returns integer language plpgsql as $$
declare
  total integer := 0;
  step integer;
begin
  loop
    select r.relayed into step from intent.relay_broadcasts(100000) r;
    exit when step = 0;
    total := total + step;
  end loop;
  return total;
end
$$;

create function pg_temp.relay_checkpoint() returns text language sql as $$
  select transaction_id::text || '/' || position from intent.checkpoints
   where consumer = 'intent.realtime_relay'
$$;

-- Structure -----------------------------------------------------------------------------------
select hasnt_trigger('intent', 'events', 'events_broadcast',
  'intent.events has no broadcast trigger any more (the relay writes the messages)');
select hasnt_function('intent', 'broadcast_events', 'the trigger function is gone');
select is_definer('intent', 'relay_broadcasts', array['integer'],
  'relay_broadcasts is SECURITY DEFINER (it writes realtime.messages whoever runs it)');
select function_owner_is('intent', 'relay_broadcasts', array['integer'], 'postgres',
  'relay_broadcasts is owned by postgres');
select is(
  (select proconfig from pg_proc where oid = 'intent.relay_broadcasts(integer)'::regprocedure),
  array['search_path=""'], 'relay_broadcasts pins an empty search_path');
select ok(
  has_function_privilege('intent_worker', 'intent.relay_broadcasts(integer)', 'execute')
  and has_function_privilege('intent_worker', 'intent.broadcast_lag(integer)', 'execute'),
  'the runtime role may relay and read the lag');
select ok(
  not has_function_privilege('authenticated', 'intent.relay_broadcasts(integer)', 'execute')
  and not has_function_privilege('anon', 'intent.relay_broadcasts(integer)', 'execute')
  and not has_function_privilege('service_role', 'intent.relay_broadcasts(integer)', 'execute'),
  'clients may not relay');
select ok(
  not has_function_privilege('authenticated', 'intent.broadcast_lag(integer)', 'execute')
  and not has_function_privilege('anon', 'intent.broadcast_lag(integer)', 'execute'),
  'clients may not read the relay''s lag');
select is_definer('intent', 'broadcast_lag', array['integer'],
  'broadcast_lag is SECURITY DEFINER (it reads the cut-over, which the runtime cannot)');
select ok(
  (select c.relrowsecurity and c.relforcerowsecurity from pg_class c
    where c.oid = 'intent.broadcast_cutover'::regclass)
  and not has_table_privilege('authenticated', 'intent.broadcast_cutover', 'select')
  and not has_table_privilege('anon', 'intent.broadcast_cutover', 'select'),
  'the cut-over table has RLS forced and no client access');
select isnt(pg_temp.relay_checkpoint(), null, 'the relay has its checkpoint');
select throws_ok('select * from intent.relay_broadcasts(0)', '22023', null,
  'a page of no events is refused');

-- Appends: no message of their own -----------------------------------------------------------
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, schema_version, payload, metadata)
values (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'pgtap.probe',
        current_setting('test.agg_1')::uuid, 1, 'pgtap.probe_opened', 1,
        '{"sku": "A-1", "name": "bolt"}', pg_temp.metadata(current_setting('test.tenant_a')));
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload, metadata)
select gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'pgtap.probe',
       case when v <= 3 then current_setting('test.agg_1')::uuid
            else current_setting('test.agg_2')::uuid end,
       case when v <= 3 then v else v - 3 end,
       'pgtap.probe_noted', jsonb_build_object('quantity', v),
       pg_temp.metadata(current_setting('test.tenant_a'))
  from generate_series(2, 5) as v;  -- agg_1 versions 2, 3; agg_2 versions 1, 2
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload, metadata)
values (gen_random_uuid(), current_setting('test.tenant_b')::uuid, 'pgtap.probe',
        current_setting('test.agg_b')::uuid, 1, 'pgtap.probe_opened', '{}',
        pg_temp.metadata(current_setting('test.tenant_b')));
select is(pg_temp.tenant_a_messages(), 0, 'an append writes no message itself');
select pg_temp.relay_all();  -- whatever others committed, not this transaction's events
select is(pg_temp.tenant_a_messages(), 0,
  'the relay does not see the events of a transaction still open (its own neither)');
commit;

-- Relayed: two messages per event, once -------------------------------------------------------
select cmp_ok(pg_temp.relay_all(), '>=', 6, 'the relay passes the committed events');
select is(pg_temp.relay_all(), 0, 'a second pass finds nothing left');

begin;
select is(
  (select count(*)::int from pg_temp.on_topic(pg_temp.tenant_topic(
     current_setting('test.tenant_a')))),
  5, 'the tenant topic has all 5 events');
select is(pg_temp.tenant_a_messages(), 10, 'two messages per event, each once');
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
  (select count(distinct id)::int from realtime.messages
    where topic like '%' || current_setting('test.tenant_a') || '%'),
  10, 'every message has its own id');
select ok(
  (select bool_and(m.event = m.payload ->> 'event_type'
                   and m.payload ->> 'id' = m.payload ->> 'event_id')
     from realtime.messages m where m.topic like '%' || current_setting('test.tenant_a') || '%'),
  'every message: event = its event type, payload.id = its event id');

select set_config('test.message', (
  select to_jsonb(m) from pg_temp.on_topic(pg_temp.aggregate_topic(
    current_setting('test.tenant_a'), current_setting('test.agg_1'))) m
   where m.payload ->> 'version' = '1')::text, true);
select is(current_setting('test.message')::jsonb ->> 'extension', 'broadcast',
  'the message is a broadcast (extension broadcast)');
select is((current_setting('test.message')::jsonb ->> 'private')::boolean, true,
  'the message is private');
select is(current_setting('test.message')::jsonb ->> 'event', 'pgtap.probe_opened',
  'the event name is the event type');
select is(
  (select array_agg(k order by k)
     from jsonb_object_keys(current_setting('test.message')::jsonb -> 'payload') k),
  array['aggregate_id', 'aggregate_type', 'event_id', 'event_type', 'id', 'metadata',
        'payload', 'position', 'recorded_at', 'schema_version', 'version'],
  'the payload is the event as load_aggregate gives it, with its aggregate and the message id');
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
        and aggregate_id = current_setting('test.agg_1')::uuid and version = 1$q$,
  'the payload carries the stored event exactly (ids, type, version, position, payload, metadata)');
select isnt(
  (select m.id from pg_temp.on_topic(pg_temp.tenant_topic(current_setting('test.tenant_a'))) m
    where m.payload ->> 'version' = '1' and m.payload ->> 'aggregate_id' = current_setting('test.agg_1')),
  (current_setting('test.message')::jsonb ->> 'id')::uuid,
  'the tenant topic''s message has an id of its own');
select is(
  (select m.payload - 'id'
     from pg_temp.on_topic(pg_temp.tenant_topic(current_setting('test.tenant_a'))) m
    where m.payload ->> 'version' = '1' and m.payload ->> 'aggregate_id' = current_setting('test.agg_1')),
  (current_setting('test.message')::jsonb -> 'payload') - 'id'::text,
  'both topics carry the same event');

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
select throws_ok('select * from intent.relay_broadcasts()', '42501', null,
  'an authenticated user cannot call the relay');
reset role;

set local role anon;
select pg_temp.claims(gen_random_uuid()::text, current_setting('test.tenant_a'), 'anon');
select is(pg_temp.visible(pg_temp.tenant_topic(current_setting('test.tenant_a'))), 0,
  'anon reads nothing, even with a tenant claim');
select throws_ok('select * from intent.relay_broadcasts()', '42501', null,
  'anon cannot call the relay');
reset role;
commit;

-- A failing message insert moves nothing ------------------------------------------------------
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload, metadata)
values (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'pgtap.probe',
        current_setting('test.agg_3')::uuid, 1, 'pgtap.probe_opened', '{}',
        pg_temp.metadata(current_setting('test.tenant_a')));

begin;
select set_config('test.checkpoint', pg_temp.relay_checkpoint(), true);
alter table realtime.messages add constraint test_refuse_all check (false) not valid;
select throws_ok('select * from intent.relay_broadcasts()', '23514', null,
  'a relay step whose message insert fails raises (the relay logs it and retries)');
select is(pg_temp.relay_checkpoint(), current_setting('test.checkpoint'),
  'and its checkpoint stays where it was');
alter table realtime.messages drop constraint test_refuse_all;
select cmp_ok(pg_temp.relay_all(), '>=', 1, 'once the fault is gone, the relay goes on');
select is(
  (select count(*)::int from realtime.messages
    where topic like '%' || current_setting('test.agg_3') || '%'
       or (topic = pg_temp.tenant_topic(current_setting('test.tenant_a'))
           and payload ->> 'aggregate_id' = current_setting('test.agg_3'))),
  2, 'and the event it could not send is sent, on both topics');

-- Postgres Changes ----------------------------------------------------------------------------
select ok(
  exists (select from pg_publication_tables
           where pubname = 'supabase_realtime' and schemaname = 'intent'
             and tablename = 'events'),
  'intent.events is in the supabase_realtime publication');

select * from finish();
rollback;
