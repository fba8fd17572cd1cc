-- Hydration RPCs (public.load_aggregate, public.read_stream), called the way PostgREST calls
-- them: as `authenticated` (or `service_role`, or `anon`) with the verified JWT's claims in
-- request.jwt.claims. A caller sees its own tenant's streams only; another tenant's aggregate
-- is an empty stream, not an error; anon may not call either function.
--
-- Tenants and aggregate ids are fresh random UUIDs kept in custom settings, so rows of other
-- suites in the same cluster cannot change the answers below.
begin;
select plan(59);
\ir _setup.psql

-- Fixtures ------------------------------------------------------------------------------------
-- X: tenant A, 5 events and a snapshot at version 3. Tenant B has a stream under the same id.
-- Z: tenant A, 3 events, no snapshot. Y: tenant B only. L: tenant A, 1,002 events.
select pg_temp.fresh_ids('tenant_a', 'tenant_b', 'user_a', 'user_b',
  'agg_x', 'agg_z', 'agg_y', 'agg_l');

create function pg_temp.append(tenant text, agg text, first integer, last integer)
returns void language sql as $$
  insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                             event_type, schema_version, payload, metadata)
  select gen_random_uuid(), tenant::uuid, 'inventory.item', agg::uuid, v,
         'inventory.stock_received', 2, jsonb_build_object('quantity', v, 'tenant', tenant),
         jsonb_build_object('note', 'v' || v)
    from generate_series(first, last) as v
$$;

-- The versions of a result's events, in the order given.
create function pg_temp.versions(answer jsonb) returns integer[] language sql as $$
  select coalesce(array_agg((e ->> 'version')::integer order by n), '{}')
    from jsonb_array_elements(answer -> 'events') with ordinality as t(e, n)
$$;

select pg_temp.append(current_setting('test.tenant_a'), current_setting('test.agg_x'), 1, 5);
select pg_temp.append(current_setting('test.tenant_b'), current_setting('test.agg_x'), 1, 2);
select pg_temp.append(current_setting('test.tenant_a'), current_setting('test.agg_z'), 1, 3);
select pg_temp.append(current_setting('test.tenant_b'), current_setting('test.agg_y'), 1, 2);
select pg_temp.append(current_setting('test.tenant_a'), current_setting('test.agg_l'), 1, 1002);
insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
                              schema_version, state)
values
  (current_setting('test.tenant_a')::uuid, 'inventory.item', current_setting('test.agg_x')::uuid,
   1, 1, '{"on_hand": 1}'),
  (current_setting('test.tenant_a')::uuid, 'inventory.item', current_setting('test.agg_x')::uuid,
   3, 2, '{"on_hand": 6}'),
  (current_setting('test.tenant_b')::uuid, 'inventory.item', current_setting('test.agg_y')::uuid,
   2, 1, '{"on_hand": 99}');

-- Structure -----------------------------------------------------------------------------------
select has_function('public', 'load_aggregate', array['text', 'uuid'],
  'public.load_aggregate(aggregate_type, aggregate_id) exists');
select has_function('public', 'read_stream', array['text', 'uuid', 'integer', 'integer'],
  'public.read_stream(aggregate_type, aggregate_id, from_version, max_count) exists');
select isnt_definer('public', 'load_aggregate', array['text', 'uuid'],
  'load_aggregate is SECURITY INVOKER (the caller''s RLS applies)');
select isnt_definer('public', 'read_stream', array['text', 'uuid', 'integer', 'integer'],
  'read_stream is SECURITY INVOKER (the caller''s RLS applies)');
select volatility_is('public', 'load_aggregate', array['text', 'uuid'], 'stable',
  'load_aggregate is STABLE (PostgREST runs it read-only; GET works)');
select volatility_is('public', 'read_stream', array['text', 'uuid', 'integer', 'integer'],
  'stable', 'read_stream is STABLE');
select is(
  (select array_agg(proconfig[1] order by proname) from pg_proc
    where oid in ('public.load_aggregate(text, uuid)'::regprocedure,
                  'public.read_stream(text, uuid, integer, integer)'::regprocedure)),
  array['search_path=""', 'search_path=""'], 'both pin an empty search_path');
select is(
  (select proargnames from pg_proc
    where oid = 'public.read_stream(text, uuid, integer, integer)'::regprocedure),
  array['aggregate_type', 'aggregate_id', 'from_version', 'max_count'],
  'read_stream takes the named arguments PostgREST passes from the JSON body');
select is(
  (select pronargdefaults::int from pg_proc
    where oid = 'public.read_stream(text, uuid, integer, integer)'::regprocedure),
  2, 'from_version and max_count have defaults');

select ok(has_function_privilege('authenticated', 'public.load_aggregate(text, uuid)', 'execute')
      and has_function_privilege('authenticated',
            'public.read_stream(text, uuid, integer, integer)', 'execute'),
  'authenticated may execute both');
select ok(has_function_privilege('service_role', 'public.load_aggregate(text, uuid)', 'execute')
      and has_function_privilege('service_role',
            'public.read_stream(text, uuid, integer, integer)', 'execute'),
  'service_role may execute both');
select ok(not has_function_privilege('anon', 'public.load_aggregate(text, uuid)', 'execute')
      and not has_function_privilege('anon',
            'public.read_stream(text, uuid, integer, integer)', 'execute'),
  'anon may execute neither');
select is(
  (select count(*)::int from pg_proc p, aclexplode(p.proacl) a
    where p.oid in ('public.load_aggregate(text, uuid)'::regprocedure,
                    'public.read_stream(text, uuid, integer, integer)'::regprocedure)
      and a.grantee = 0),
  0, 'PUBLIC has no execute right on either');

-- anon: refused -------------------------------------------------------------------------------
set local role anon;
select pg_temp.claims(null, current_setting('test.tenant_a'), 'anon');
select is(
  pg_temp.refusal(format('select public.load_aggregate(%L, %L)', 'inventory.item',
                         current_setting('test.agg_x'))),
  '42501 (no hint)', 'anon may not call load_aggregate (permission denied)');
select is(
  pg_temp.refusal(format('select public.read_stream(%L, %L)', 'inventory.item',
                         current_setting('test.agg_x'))),
  '42501 (no hint)', 'anon may not call read_stream (permission denied)');
reset role;

-- Tenant A: snapshot + tail -------------------------------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select set_config('test.x',
  public.load_aggregate('inventory.item', current_setting('test.agg_x')::uuid)::text, true);

select is(
  (select array_agg(k order by k) from jsonb_object_keys(current_setting('test.x')::jsonb) k),
  array['aggregate_id', 'aggregate_type', 'events', 'next_version', 'snapshot', 'version'],
  'load_aggregate answers {aggregate_type, aggregate_id, snapshot, events, version, next_version}');
select is(current_setting('test.x')::jsonb ->> 'aggregate_type', 'inventory.item',
  'it names the aggregate type');
select is(current_setting('test.x')::jsonb ->> 'aggregate_id', current_setting('test.agg_x'),
  'it names the aggregate id');
select is(current_setting('test.x')::jsonb -> 'snapshot',
  '{"version": 3, "schema_version": 2, "state": {"on_hand": 6}}'::jsonb,
  'the snapshot is the newest one (version 3, not 1), with its schema version and state');
select is(pg_temp.versions(current_setting('test.x')::jsonb), array[4, 5],
  'the events are the tail after the snapshot, in version order');
select is((current_setting('test.x')::jsonb ->> 'version')::int, 5,
  'version is the stream''s head');
select is(current_setting('test.x')::jsonb -> 'next_version', 'null'::jsonb,
  'next_version is null: the answer reaches the head');
select is(
  (select array_agg(k order by k)
     from jsonb_object_keys(current_setting('test.x')::jsonb -> 'events' -> 0) k),
  array['event_id', 'event_type', 'metadata', 'payload', 'position', 'recorded_at',
        'schema_version', 'version'],
  'each event is {event_id, event_type, schema_version, version, payload, metadata, '
  'recorded_at, position}');
select results_eq(
  $q$select e ->> 'event_id', e ->> 'event_type', (e ->> 'schema_version')::int, e -> 'payload',
            e -> 'metadata', (e ->> 'position')::bigint, (e ->> 'recorded_at')::timestamptz
       from jsonb_array_elements(current_setting('test.x')::jsonb -> 'events') e
      order by (e ->> 'version')::int$q$,
  $q$select event_id::text, event_type, schema_version, payload, metadata, position, recorded_at
       from intent.events
      where tenant_id = current_setting('test.tenant_a')::uuid
        and aggregate_id = current_setting('test.agg_x')::uuid and version > 3
      order by version$q$,
  'the events carry exactly the stored rows (payloads as stored, not upcast)');
select ok(
  (select bool_and((e ->> 'payload')::jsonb ->> 'tenant' = current_setting('test.tenant_a'))
     from jsonb_array_elements(current_setting('test.x')::jsonb -> 'events') e),
  'they are tenant A''s events, not those of tenant B''s stream under the same id');

-- No snapshot: the whole stream; unknown aggregate: an empty stream
select set_config('test.z',
  public.load_aggregate('inventory.item', current_setting('test.agg_z')::uuid)::text, true);
select is(current_setting('test.z')::jsonb -> 'snapshot', 'null'::jsonb,
  'without a snapshot, snapshot is null');
select is(pg_temp.versions(current_setting('test.z')::jsonb), array[1, 2, 3],
  'without a snapshot, every event from version 1');
select is((current_setting('test.z')::jsonb ->> 'version')::int, 3, 'and the head version');

select is(
  public.load_aggregate('inventory.item', gen_random_uuid()) - 'aggregate_id',
  '{"aggregate_type": "inventory.item", "snapshot": null, "events": [], "version": 0,
    "next_version": null}'::jsonb,
  'an unknown aggregate is an empty stream at version 0');
select is(
  public.load_aggregate('orders.order', current_setting('test.agg_x')::uuid) -> 'version',
  '0'::jsonb, 'the aggregate type is part of the key: another type under the id is empty');

-- A long stream without a snapshot: the tail is capped
select set_config('test.l',
  public.load_aggregate('inventory.item', current_setting('test.agg_l')::uuid)::text, true);
select is(jsonb_array_length(current_setting('test.l')::jsonb -> 'events'), 1000,
  'the hydration tail is capped at 1,000 events');
select is((current_setting('test.l')::jsonb ->> 'next_version')::int, 1001,
  'next_version says where read_stream continues');
select is((current_setting('test.l')::jsonb ->> 'version')::int, 1002,
  'version is still the head');

-- read_stream: paging by version --------------------------------------------------------------
select is(pg_temp.versions(public.read_stream('inventory.item', current_setting('test.agg_x')::uuid)),
  array[1, 2, 3, 4, 5], 'read_stream from the start (defaults) returns the whole short stream');
select is(
  public.read_stream('inventory.item', current_setting('test.agg_x')::uuid)
    - 'events' - 'aggregate_id',
  '{"aggregate_type": "inventory.item", "from_version": 1, "version": 5,
    "next_version": null}'::jsonb,
  'read_stream answers {aggregate_type, aggregate_id, from_version, events, version, next_version}');
select is(pg_temp.versions(public.read_stream('inventory.item',
                             current_setting('test.agg_x')::uuid, 2, 2)),
  array[2, 3], 'from_version 2, max_count 2: versions 2 and 3');
select is(public.read_stream('inventory.item', current_setting('test.agg_x')::uuid, 2, 2)
            -> 'next_version', '4'::jsonb,
  'a page short of the head names the next version');
select is(pg_temp.versions(public.read_stream('inventory.item',
                             current_setting('test.agg_x')::uuid, 4, 2)),
  array[4, 5], 'the next page: versions 4 and 5');
select is(public.read_stream('inventory.item', current_setting('test.agg_x')::uuid, 4, 2)
            -> 'next_version', 'null'::jsonb,
  'a page that reaches the head has no next version');
select is(public.read_stream('inventory.item', current_setting('test.agg_x')::uuid, 6, 10)
            - 'aggregate_id' - 'aggregate_type',
  '{"from_version": 6, "events": [], "version": 5, "next_version": null}'::jsonb,
  'past the head: no events, the head version, no next version');
select is(
  (select count(*)::int from jsonb_array_elements(
     public.read_stream('inventory.item', current_setting('test.agg_l')::uuid, 1, 1000) -> 'events')),
  1000, 'max_count 1000 is allowed');
select is(
  pg_temp.versions(public.read_stream('inventory.item', current_setting('test.agg_l')::uuid,
                                      1001, 1000)),
  array[1001, 1002], 'the last page of a long stream');
select ok(
  (select bool_and(p2 > p1) from (
     select (e ->> 'position')::bigint as p2,
            lag((e ->> 'position')::bigint) over (order by (e ->> 'version')::int) as p1
       from jsonb_array_elements(public.read_stream('inventory.item',
              current_setting('test.agg_x')::uuid) -> 'events') e) t
    where p1 is not null),
  'positions grow with versions');

select is(
  pg_temp.refusal(format('select public.read_stream(%L, %L, 1, 1001)', 'inventory.item',
                         current_setting('test.agg_x'))),
  'PT400 invalid_page', 'max_count over 1000 is refused with PT400 invalid_page');
select is(
  pg_temp.refusal(format('select public.read_stream(%L, %L, 1, 0)', 'inventory.item',
                         current_setting('test.agg_x'))),
  'PT400 invalid_page', 'max_count 0 is refused');
select is(
  pg_temp.refusal(format('select public.read_stream(%L, %L, 0, 10)', 'inventory.item',
                         current_setting('test.agg_x'))),
  'PT400 invalid_page', 'from_version 0 is refused');
select is(
  pg_temp.refusal(format('select public.read_stream(%L, %L, null, 10)', 'inventory.item',
                         current_setting('test.agg_x'))),
  'PT400 invalid_page', 'a null from_version is refused');
select is(
  pg_temp.refusal(format('select public.load_aggregate(null, %L)', current_setting('test.agg_x'))),
  'PT400 malformed', 'a null aggregate type is refused with PT400 malformed');

-- Other tenants see nothing -------------------------------------------------------------------
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_y')::uuid)
    - 'aggregate_id' - 'aggregate_type',
  '{"snapshot": null, "events": [], "version": 0, "next_version": null}'::jsonb,
  'tenant A loading tenant B''s aggregate gets an empty stream (not an error, no snapshot)');
select is(
  public.read_stream('inventory.item', current_setting('test.agg_y')::uuid) -> 'events',
  '[]'::jsonb, 'tenant A reading tenant B''s stream gets no events');

select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_x')::uuid) - 'aggregate_id'
    - 'aggregate_type' - 'events',
  '{"snapshot": null, "version": 2, "next_version": null}'::jsonb,
  'tenant B sees its own stream under the shared id: no snapshot of A''s, head 2');
select ok(
  (select bool_and((e ->> 'payload')::jsonb ->> 'tenant' = current_setting('test.tenant_b'))
     from jsonb_array_elements(public.load_aggregate('inventory.item',
            current_setting('test.agg_x')::uuid) -> 'events') e),
  'and only its own events');
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_y')::uuid) -> 'snapshot',
  '{"version": 2, "schema_version": 1, "state": {"on_hand": 99}}'::jsonb,
  'tenant B sees its own snapshot');
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_y')::uuid) -> 'events',
  '[]'::jsonb, 'a snapshot at the head leaves no tail');

select pg_temp.claims(current_setting('test.user_a'), null);
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_x')::uuid) -> 'version',
  '0'::jsonb, 'a token without a tenant sees an empty stream');
select is(
  public.read_stream('inventory.item', current_setting('test.agg_x')::uuid) -> 'events',
  '[]'::jsonb, 'and reads no events');
reset role;

-- service_role bypasses RLS, but the tenant filter keeps it to its token's tenant -------------
set local role service_role;
select pg_temp.claims(null, current_setting('test.tenant_a'), 'service_role');
select is(
  public.load_aggregate('inventory.item', current_setting('test.agg_x')::uuid) -> 'snapshot'
    -> 'version', '3'::jsonb, 'service_role with tenant A''s token loads tenant A''s aggregate');
select is(
  pg_temp.versions(public.read_stream('inventory.item', current_setting('test.agg_x')::uuid)),
  array[1, 2, 3, 4, 5], 'and reads tenant A''s 5 events, none of tenant B''s');
select is(
  public.read_stream('inventory.item', current_setting('test.agg_y')::uuid) -> 'events',
  '[]'::jsonb, 'service_role with tenant A''s token does not read tenant B''s stream');
reset role;

select * from finish();
rollback;
