-- The SQL ingress, called the way PostgREST calls it: as `authenticated` (or `service_role`,
-- or `anon`) with the verified JWT in request.jwt.claims. Tenant, user and role must come from
-- the claims alone; every refusal has its SQLSTATE (PTxyz = HTTP xyz) and a stable hint, and
-- stores nothing; the same command id twice is one command.
--
-- Tenants, users and aggregate ids are fresh random UUIDs kept in custom settings, so rows of
-- other suites in the same cluster cannot change the counts below.
begin;
select plan(91);
\ir _setup.psql

-- Fixtures ------------------------------------------------------------------------------------
select pg_temp.fresh_ids('tenant_a', 'tenant_b', 'user_a', 'user_a2', 'user_b', 'item_a',
  'item_a_events', 'item_b', 'command_1', 'correlation');
select set_config('test.traceparent',
  '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', true);

-- A register_item payload for an item id (text, so tests can also pass non-UUIDs).
create function pg_temp.register(item text) returns jsonb language sql as $$
  select jsonb_build_object('item_id', item, 'sku', 'SKU-1', 'name', 'A thing')
$$;

-- Rows of the two test tenants, read as postgres (which bypasses RLS).
create function pg_temp.stored() returns integer language sql as $$
  select count(*)::int from intent.commands
   where tenant_id in (current_setting('test.tenant_a')::uuid,
                       current_setting('test.tenant_b')::uuid)
$$;

-- Structure -----------------------------------------------------------------------------------
select has_function('public', 'submit_command', array['text', 'jsonb', 'uuid', 'uuid', 'text'],
  'public.submit_command(command_type, payload, command_id, correlation_id, traceparent) exists');
select is_definer('public', 'submit_command', array['text', 'jsonb', 'uuid', 'uuid', 'text'],
  'submit_command is SECURITY DEFINER (it writes intent.commands, which clients cannot)');
select function_owner_is('public', 'submit_command',
  array['text', 'jsonb', 'uuid', 'uuid', 'text'], 'postgres', 'submit_command is owned by postgres');
select is(
  (select proconfig from pg_proc
    where oid = 'public.submit_command(text, jsonb, uuid, uuid, text)'::regprocedure),
  array['search_path=""'], 'submit_command pins an empty search_path');
select is(
  (select proargnames from pg_proc
    where oid = 'public.submit_command(text, jsonb, uuid, uuid, text)'::regprocedure),
  array['command_type', 'payload', 'command_id', 'correlation_id', 'traceparent'],
  'submit_command takes the named arguments PostgREST passes from the JSON body');
select has_function('public', 'command_status', array['uuid'],
  'public.command_status(command_id) exists');
select isnt_definer('public', 'command_status', array['uuid'],
  'command_status is SECURITY INVOKER, so the RLS of intent.commands applies');
select volatility_is('public', 'command_status', array['uuid'], 'stable',
  'command_status is STABLE (PostgREST runs it read-only, and it may use GET)');

select ok(has_function_privilege('authenticated',
  'public.submit_command(text, jsonb, uuid, uuid, text)', 'execute'),
  'authenticated may execute submit_command');
select ok(has_function_privilege('service_role',
  'public.submit_command(text, jsonb, uuid, uuid, text)', 'execute'),
  'service_role may execute submit_command');
select ok(not has_function_privilege('anon',
  'public.submit_command(text, jsonb, uuid, uuid, text)', 'execute'),
  'anon may not execute submit_command (not even through PUBLIC)');
select ok(not has_function_privilege('anon', 'public.command_status(uuid)', 'execute'),
  'anon may not execute command_status (not even through PUBLIC)');
select ok(has_function_privilege('authenticated', 'public.command_status(uuid)', 'execute'),
  'authenticated may execute command_status');

select ok(
  (select relrowsecurity and relforcerowsecurity from pg_class
    where oid = 'intent.command_types'::regclass),
  'intent.command_types has row level security enabled and forced');
select ok(
  not has_table_privilege('authenticated', 'intent.command_types', 'select')
  and not has_table_privilege('anon', 'intent.command_types', 'select')
  and not has_table_privilege('service_role', 'intent.command_types', 'select,insert'),
  'no client role can read or write intent.command_types');
select is(
  (select roles from intent.command_types where command_type = 'inventory.register_item'),
  array['authenticated', 'service_role'],
  'the generated allow list is applied (inventory.register_item, from the Python registry)');

-- A test-only command type that only the service may send (rolled back with the rest).
insert into intent.command_types (command_type, aggregate_type, aggregate_id_field, roles)
values ('test.service_only', 'inventory.item', 'item_id', array['service_role']);

-- anon: no access at all ------------------------------------------------------------------------
set local role anon;
select pg_temp.claims(null, current_setting('test.tenant_a'), 'anon');
select throws_ok(
  format($q$select public.submit_command('inventory.register_item', %L)$q$,
         pg_temp.register(current_setting('test.item_a'))),
  '42501', null, 'anon cannot execute submit_command');
select throws_ok(
  format($q$select public.command_status(%L)$q$, current_setting('test.command_1')),
  '42501', null, 'anon cannot execute command_status');
reset role;

-- A user of tenant A submits -----------------------------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));

select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    pg_temp.register(current_setting('test.item_a'))
      || jsonb_build_object('tenant_id', current_setting('test.tenant_b'),
                            'user_id', current_setting('test.user_b')))),
  'PT400 malformed',
  'a payload naming a tenant_id and a user_id is refused: the model declares no such fields');
select is(
  public.submit_command(
    'inventory.register_item',
    pg_temp.register(current_setting('test.item_a')),
    current_setting('test.command_1')::uuid,
    current_setting('test.correlation')::uuid,
    current_setting('test.traceparent')),
  jsonb_build_object('command_id', current_setting('test.command_1'), 'status', 'pending'),
  'submit_command answers {command_id, status: pending}');
reset role;

select is(pg_temp.stored(), 1, 'one command is stored');
select results_eq(
  $q$select tenant_id::text, user_id::text, role, command_type, aggregate_type,
            aggregate_id::text, status
       from intent.commands where command_id = current_setting('test.command_1')::uuid$q$,
  $q$values (current_setting('test.tenant_a'), current_setting('test.user_a'), 'authenticated',
             'inventory.register_item', 'inventory.item', current_setting('test.item_a'),
             'pending')$q$,
  'the row has tenant, user and role from the claims, the target from the registry and payload');
select is(
  (select payload from intent.commands
    where command_id = current_setting('test.command_1')::uuid),
  pg_temp.register(current_setting('test.item_a')),
  'the payload is stored as sent');
select is(
  (select metadata - 'occurred_at' from intent.commands
    where command_id = current_setting('test.command_1')::uuid),
  jsonb_build_object(
    'tenant_id', current_setting('test.tenant_a'),
    'user_id', current_setting('test.user_a'),
    'role', 'authenticated',
    'correlation_id', current_setting('test.correlation'),
    'causation_id', null,
    'traceparent', current_setting('test.traceparent'),
    'schema_version', 1),
  'the metadata names the claims'' tenant, user and role');
select ok(
  (select (metadata ->> 'occurred_at') ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$'
          and (metadata ->> 'occurred_at')::timestamptz = created_at
     from intent.commands where command_id = current_setting('test.command_1')::uuid),
  'metadata.occurred_at is the submission time, ISO 8601 with a zone');
select is(
  (select array_agg(k order by k) from intent.commands c, jsonb_object_keys(c.metadata) k
    where c.command_id = current_setting('test.command_1')::uuid),
  array['causation_id', 'correlation_id', 'occurred_at', 'role', 'schema_version',
        'tenant_id', 'traceparent', 'user_id'],
  'the metadata has exactly the fields of domain.contracts.Metadata');

-- Idempotency: the same id again is the same command --------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a2'), current_setting('test.tenant_a'));
select is(
  public.submit_command('inventory.register_item',
    pg_temp.register(current_setting('test.item_a')) || '{"sku": "OTHER"}',
    current_setting('test.command_1')::uuid),
  jsonb_build_object('command_id', current_setting('test.command_1'), 'status', 'pending'),
  'the same command id again answers the first command''s id and status');
reset role;
select is(pg_temp.stored(), 1, 'the same command id again stores nothing new');
select results_eq(
  $q$select payload ->> 'sku', user_id::text from intent.commands
      where command_id = current_setting('test.command_1')::uuid$q$,
  $q$values ('SKU-1', current_setting('test.user_a'))$q$,
  'the first submission''s payload and user are kept');

update intent.commands set status = 'processed', result = '{"version": 1}'
 where command_id = current_setting('test.command_1')::uuid;
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select is(
  public.submit_command('inventory.register_item',
    pg_temp.register(current_setting('test.item_a')), current_setting('test.command_1')::uuid),
  jsonb_build_object('command_id', current_setting('test.command_1'), 'status', 'processed'),
  'a retry after processing answers the stored status (processed)');

-- Defaults: a new command id and a new correlation id each time ---------------------------------
select set_config('test.command_2',
  public.submit_command('inventory.receive_stock',
    jsonb_build_object('item_id', current_setting('test.item_a'), 'quantity', 5)) ->> 'command_id',
  true);
select ok(current_setting('test.command_2') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
          and current_setting('test.command_2') <> current_setting('test.command_1'),
  'without a command id, a new UUID is chosen');
reset role;
select results_eq(
  $q$select metadata ->> 'correlation_id' is not null,
            (metadata ->> 'correlation_id') <> current_setting('test.correlation'),
            metadata -> 'traceparent' = 'null'::jsonb
       from intent.commands where command_id = current_setting('test.command_2')::uuid$q$,
  $q$values (true, true, true)$q$,
  'without a correlation id, a new one is chosen; without a traceparent, it is null');
select is(pg_temp.stored(), 2, 'two commands are stored for the test tenants');

-- command_status: the caller's own commands only ----------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a2'), current_setting('test.tenant_a'));
select is(public.command_status(current_setting('test.command_1')::uuid), null,
  'another user of the same tenant cannot see the command (its payload is the sender''s)');
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select is(
  public.command_status(current_setting('test.command_1')::uuid)
    - 'created_at' - 'updated_at',
  jsonb_build_object(
    'command_id', current_setting('test.command_1'), 'command_type', 'inventory.register_item',
    'status', 'processed', 'result', '{"version": 1}'::jsonb, 'error', null),
  'command_status shows the caller''s own command');
select ok(
  (public.command_status(current_setting('test.command_1')::uuid) ?& array['created_at', 'updated_at']),
  'command_status includes created_at and updated_at');
select is(public.command_status(gen_random_uuid()), null,
  'command_status of an unknown command id is null');

select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));
select is(public.command_status(current_setting('test.command_1')::uuid), null,
  'another tenant''s user cannot see the command through command_status');
select pg_temp.claims(current_setting('test.user_a'), null);
select is(public.command_status(current_setting('test.command_1')::uuid), null,
  'a token without a tenant sees no command');
reset role;

set local role service_role;
select pg_temp.claims(null, current_setting('test.tenant_b'), 'service_role');
select is(public.command_status(current_setting('test.command_1')::uuid), null,
  'service_role (which bypasses RLS) still sees only its token''s tenant');
reset role;

-- Tenant B may not touch tenant A's command ids or aggregates ------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L, %L)$q$,
    pg_temp.register(current_setting('test.item_b')), current_setting('test.command_1'))),
  'PT409 command_id_conflict',
  'a command id already used by another tenant is refused: PT409 command_id_conflict');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    pg_temp.register(current_setting('test.item_a')))),
  'PT403 forbidden',
  'an aggregate with commands of another tenant is refused: PT403 forbidden');
select throws_ok(
  format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
         jsonb_build_object('item_id', current_setting('test.item_a'), 'quantity', 1)),
  'PT403', 'This command may not target that inventory.item.',
  'the refusal says no more than needed (no tenant, no owner)');
reset role;

-- An aggregate known only by its events (say, imported or appended by the worker).
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload)
values (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'inventory.item',
        current_setting('test.item_a_events')::uuid, 1, 'inventory.item_registered',
        pg_temp.register(current_setting('test.item_a_events')));
set local role authenticated;
select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_a_events'), 'quantity', 1))),
  'PT403 forbidden',
  'an aggregate with events of another tenant is refused: PT403 forbidden');
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_a_events'), 'quantity', 1))),
  'accepted', 'the owning tenant may target its aggregate known by events');
reset role;
select is(pg_temp.stored(), 3, 'only the owning tenant''s command was stored');

-- Every refusal: its SQLSTATE and hint, and nothing stored --------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));

select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    pg_temp.register(current_setting('test.item_b')))),
  'accepted', 'sanity: tenant B''s user may register its own item');
reset role;
select is(pg_temp.stored(), 4, 'sanity: and it is stored');
set local role authenticated;

-- no tenant
select pg_temp.claims(current_setting('test.user_b'), null);
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1))),
  'PT401 no_tenant', 'a token without app_metadata.tenant_id: PT401 no_tenant');
select throws_ok(
  format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
         jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1)),
  'PT401', null, 'no tenant is SQLSTATE PT401 (HTTP 401 through PostgREST)');
select pg_temp.claims(current_setting('test.user_b'), 'tenant-b');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1))),
  'PT401 no_tenant', 'a tenant claim that is not a UUID: PT401 no_tenant');
select set_config('request.jwt.claims', jsonb_build_object(
  'sub', current_setting('test.user_b'), 'role', 'authenticated',
  'tenant_id', current_setting('test.tenant_b'),
  'user_metadata', jsonb_build_object('tenant_id', current_setting('test.tenant_b')))::text, true);
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1))),
  'PT401 no_tenant',
  'a tenant named outside app_metadata (top level, user_metadata) does not count: PT401 no_tenant');
select pg_temp.claims('not-a-uuid', current_setting('test.tenant_b'));
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1))),
  'PT401 invalid_claims', 'a sub claim that is not a UUID: PT401 invalid_claims');

select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));

-- unknown command type
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.steal_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b')))),
  'PT400 unknown_command_type', 'an unknown command type: PT400 unknown_command_type');
select throws_ok(
  format($q$select public.submit_command('inventory.steal_stock', %L)$q$,
         jsonb_build_object('item_id', current_setting('test.item_b'))),
  'PT400', 'Unknown command type ''inventory.steal_stock''.',
  'the message names the unknown command type');
select is(
  pg_temp.refusal(format($q$select public.submit_command(null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b')))),
  'PT400 unknown_command_type', 'a null command type: PT400 unknown_command_type');
select is(
  pg_temp.refusal(format($q$select public.submit_command('Inventory.Register_Item', %L)$q$,
    pg_temp.register(current_setting('test.item_b')))),
  'PT400 unknown_command_type', 'command types are matched exactly (case matters)');

-- role not allowed
select is(
  pg_temp.refusal(format($q$select public.submit_command('test.service_only', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b')))),
  'PT403 forbidden', 'a role the command type does not allow: PT403 forbidden');
select throws_ok(
  format($q$select public.submit_command('test.service_only', %L)$q$,
         jsonb_build_object('item_id', current_setting('test.item_b'))),
  'PT403', 'Role authenticated may not send test.service_only.',
  'the message names the role and the command type');
select set_config('request.jwt.claims', jsonb_build_object(
  'sub', current_setting('test.user_b'),
  'app_metadata', jsonb_build_object('tenant_id', current_setting('test.tenant_b')))::text, true);
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1))),
  'PT403 forbidden', 'a token without a role claim: PT403 forbidden');
select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));

-- malformed payloads
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock', null)$q$),
  'PT400 malformed', 'a null payload: PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock', 'null')$q$),
  'PT400 malformed', 'a JSON null payload: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_array(jsonb_build_object('item_id', current_setting('test.item_b'))))),
  'PT400 malformed', 'an array payload: PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock', '"item"')$q$),
  'PT400 malformed', 'a string payload: PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock', '{"quantity": 1}')$q$),
  'PT400 malformed', 'a payload without its aggregate id field (item_id): PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock',
                       '{"item_id": "item-1", "quantity": 1}')$q$),
  'PT400 malformed', 'an aggregate id that is not a UUID: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b') || 'x', 'quantity', 1))),
  'PT400 malformed', 'an aggregate id with trailing characters: PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock',
                       '{"item_id": 12345, "quantity": 1}')$q$),
  'PT400 malformed', 'an aggregate id that is a number: PT400 malformed');
select is(
  pg_temp.refusal($q$select public.submit_command('inventory.receive_stock',
                       '{"item_id": null, "quantity": 1}')$q$),
  'PT400 malformed', 'an aggregate id that is JSON null: PT400 malformed');
select throws_ok(
  $q$select public.submit_command('inventory.receive_stock', '{"quantity": 1}')$q$,
  'PT400', 'The payload field item_id must be a UUID naming the target inventory.item.',
  'the message names the field the registry says holds the aggregate id');

-- payload too large (64 KiB of JSON text)
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    pg_temp.register(current_setting('test.item_b'))
      || jsonb_build_object('name', repeat('x', 65536)))),
  'PT413 payload_too_large', 'a payload over 64 KiB: PT413 payload_too_large');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'),
                       'name', repeat('é', 40000)))),
  'PT413 payload_too_large', 'the limit counts bytes, not characters');
select is(
  pg_temp.refusal(format(
    $q$select public.submit_command('inventory.register_item', %L, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'),
      'name', repeat('x', 65536 - length(jsonb_build_object(
        'item_id', current_setting('test.item_b'), 'name', '')::text))),
    current_setting('test.command_1')::uuid)),
  'PT400 malformed',
  'a payload of exactly 64 KiB is not too large: it passes the size check, then meets the '
  'name field''s limit');

-- field limits (domain.bounds and the payload models, stored in intent.command_types)
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    format('{"item_id": "%s", "quantity": 9223372036854775808}',
           current_setting('test.item_b')))),
  'PT400 malformed', 'a quantity of 2^63 (beyond int64): PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', '5'))),
  'PT400 malformed', 'a quantity that is a string: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 0))),
  'PT400 malformed', 'a quantity the model requires above 0: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.register_item', %L)$q$,
    pg_temp.register(current_setting('test.item_b')) || '{"sku": ""}')),
  'PT400 malformed', 'an empty sku (min length 1): PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1,
                       'junk', '[[[[[[[[1]]]]]]]]'::jsonb))),
  'PT400 malformed', 'a field the model does not declare: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b')))),
  'PT400 malformed', 'a required field missing: PT400 malformed');

-- traceparent
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1),
    upper(current_setting('test.traceparent')))),
  'PT400 malformed', 'an upper-case traceparent: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1),
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7')),
  'PT400 malformed', 'a traceparent without flags: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1),
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')),
  'PT400 malformed', 'traceparent version ff: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1),
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01')),
  'PT400 malformed', 'an all-zero trace id: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1),
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01')),
  'PT400 malformed', 'an all-zero parent id: PT400 malformed');
select is(
  pg_temp.refusal(format($q$select public.submit_command('inventory.receive_stock', %L, null, null, %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b'), 'quantity', 1), '')),
  'PT400 malformed', 'an empty traceparent: PT400 malformed');
reset role;

select is(pg_temp.stored(), 4, 'no refusal stored anything');
select is(
  (select count(*)::int from intent.commands where command_type = 'inventory.steal_stock'
      or aggregate_id = current_setting('test.item_a')::uuid
         and tenant_id = current_setting('test.tenant_b')::uuid),
  0, 'no refused command is anywhere in intent.commands');

-- service_role: allowed by the registry, still needs a tenant from its token -------------------
set local role service_role;
select pg_temp.claims(null, current_setting('test.tenant_b'), 'service_role');
select set_config('test.command_3',
  public.submit_command('test.service_only',
    jsonb_build_object('item_id', current_setting('test.item_b'))) ->> 'command_id', true);
select pg_temp.claims(null, null, 'service_role');
select is(
  pg_temp.refusal(format($q$select public.submit_command('test.service_only', %L)$q$,
    jsonb_build_object('item_id', current_setting('test.item_b')))),
  'PT401 no_tenant', 'service_role without a tenant claim: PT401 no_tenant');
reset role;
select results_eq(
  $q$select tenant_id::text, user_id, role, metadata -> 'user_id', metadata ->> 'role'
       from intent.commands where command_id = current_setting('test.command_3')::uuid$q$,
  $q$values (current_setting('test.tenant_b'), null::uuid, 'service_role', 'null'::jsonb,
             'service_role')$q$,
  'service_role may send a service-only command type; no sub means no user, role service_role');

-- The ingress cannot be bypassed ----------------------------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (gen_random_uuid(), %L, 'authenticated', 'inventory.register_item', '{}')$q$,
         current_setting('test.tenant_a')),
  '42501', null, 'authenticated still cannot insert into intent.commands directly');
select throws_ok($q$select * from intent.command_types$q$, '42501', null,
  'authenticated cannot read the allow list');
reset role;

select * from finish();
rollback;
