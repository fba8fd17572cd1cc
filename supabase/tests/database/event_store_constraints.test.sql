-- What the database itself refuses in the event store, whoever writes (postgres bypasses RLS,
-- so these are the guarantees that hold for the worker too), and the structural rules that
-- keep tenant isolation from regressing when tables are added to schema intent.
begin;
select plan(49);
\ir _setup.psql

select pg_temp.fresh_ids('tenant_a', 'tenant_b', 'agg', 'event_1');

-- One stream of tenant A, at version 1 ---------------------------------------------------------
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (%L, %L, 'intent.goal', %L, 1, 'goal.created', '{"title":"x"}')$q$,
         current_setting('test.event_1'), current_setting('test.tenant_a'),
         current_setting('test.agg')),
  'postgres can append version 1 of a stream');

-- Optimistic concurrency: one event per (tenant, aggregate type, aggregate id, version) ------
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 1, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg')),
  '23505', 'duplicate key value violates unique constraint "events_stream_version_key"',
  'a second event at the same stream version is refused, even for postgres');

set local role service_role;
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 1, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg')),
  '23505', 'duplicate key value violates unique constraint "events_stream_version_key"',
  'a second event at the same stream version is refused for service_role too');
reset role;

select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 2, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg')),
  'the next version of the stream is accepted');

-- Tenancy is part of the stream identity: the same aggregate id and version in tenant B is a
-- different stream.
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 1, 'goal.created', '{}')$q$,
         current_setting('test.tenant_b'), current_setting('test.agg')),
  'the same aggregate id and version in another tenant is allowed');
-- So is the aggregate type: another type with the same id and version is another stream.
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.plan', %L, 1, 'plan.created', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg')),
  'the same aggregate id and version under another aggregate type is allowed');
select is(
  (select count(*)::int from intent.events
    where aggregate_id = current_setting('test.agg')::uuid),
  4, 'exactly the four accepted events were recorded');

select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (%L, %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created', '{}')$q$,
         current_setting('test.event_1'), current_setting('test.tenant_b')),
  '23505', 'duplicate key value violates unique constraint "events_event_id_key"',
  'a duplicate event_id is refused, even in another tenant and stream');

-- Row shape ----------------------------------------------------------------------------------
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 0, 'goal.created',
                  '{}')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_version_positive"',
  'version 0 is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), -1, 'goal.created',
                  '{}')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_version_positive"',
  'a negative version is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
                  '[1, 2]')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_payload_is_object"',
  'a payload that is a JSON array is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
                  '"text"')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_payload_is_object"',
  'a payload that is a JSON string is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
                  'null')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_payload_is_object"',
  'a payload that is JSON null is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
                  null)$q$, current_setting('test.tenant_a')),
  '23502', null, 'an SQL NULL payload is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload, metadata)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
                  '{}', '[]')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_metadata_is_object"',
  'metadata that is not a JSON object is refused');
select throws_ok(
  $q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
       version, event_type, payload)
     values (gen_random_uuid(), null, 'intent.goal', gen_random_uuid(), 1, 'goal.created',
             '{}')$q$,
  '23502', null, 'an event without a tenant is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'Intent.Goal', gen_random_uuid(), 1, 'goal.created',
                  '{}')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_type_names"',
  'an aggregate type that is not a lower-case dotted name is refused');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1, 'goal created',
                  '{}')$q$, current_setting('test.tenant_a')),
  '23514', 'new row for relation "events" violates check constraint "events_type_names"',
  'an event type that is not a lower-case dotted name is refused');
select throws_ok(
  format($q$insert into intent.events (position, event_id, tenant_id, aggregate_type,
            aggregate_id, version, event_type, payload)
          values (1, gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1,
                  'goal.created', '{}')$q$, current_setting('test.tenant_a')),
  '428C9', null, 'a writer cannot choose the global position (generated always)');
select is(
  (select array_agg(distinct transaction_id) from intent.events
    where aggregate_id = current_setting('test.agg')::uuid),
  array[pg_current_xact_id()],
  'events record the id of the transaction that wrote them');

-- Immutability --------------------------------------------------------------------------------
select throws_ok(
  format($q$update intent.events set payload = '{"title":"changed"}' where event_id = %L$q$,
         current_setting('test.event_1')),
  '23001', 'events are immutable: UPDATE on intent.events is not allowed',
  'an UPDATE of an event is refused, even for postgres');
set local role service_role;
select throws_ok(
  format($q$update intent.events set metadata = '{"k":1}' where event_id = %L$q$,
         current_setting('test.event_1')),
  '42501', 'permission denied for table events',
  'service_role has no UPDATE on events at all');
reset role;
select is(
  (select payload from intent.events where event_id = current_setting('test.event_1')::uuid),
  '{"title":"x"}'::jsonb, 'the event is unchanged');
select has_trigger('intent', 'events', 'events_immutable',
  'intent.events has the immutability trigger');
select throws_ok(
  format($q$delete from intent.events where event_id = %L$q$, current_setting('test.event_1')),
  '23001', 'events are immutable: DELETE on intent.events is not allowed',
  'a DELETE of an event is refused, even for postgres');
select throws_ok(
  $q$truncate intent.events$q$,
  '23001', 'events are immutable: TRUNCATE on intent.events is not allowed',
  'TRUNCATE of the events table is refused');
set local role service_role;
select throws_ok(
  format($q$insert into intent.events (transaction_id, event_id, tenant_id, aggregate_type,
            aggregate_id, version, event_type, payload)
            values ('1'::xid8, gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1,
                    'intent.goal_set', '{}')$q$, current_setting('test.tenant_a')),
  '42501', 'permission denied for table events',
  'service_role cannot choose the transaction id that orders the feed');
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
            values (gen_random_uuid(), %L, 'intent.goal', gen_random_uuid(), 1,
                    'intent.goal_set', '{}')$q$, current_setting('test.tenant_a')),
  'service_role may append an event with the columns it owns');
reset role;

-- Snapshots and commands ----------------------------------------------------------------------
insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
                              schema_version, state)
values (current_setting('test.tenant_a')::uuid, 'intent.goal',
        current_setting('test.agg')::uuid, 1, 1, '{}');
select throws_ok(
  format($q$insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
            schema_version, state)
          values (%L, 'intent.goal', %L, 1, 1, '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg')),
  '23505', null, 'a second snapshot at the same stream version is refused');
select lives_ok(
  format($q$insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
            schema_version, state)
          values (%L, 'intent.goal', %L, 1, 1, '{}')$q$,
         current_setting('test.tenant_b'), current_setting('test.agg')),
  'the same snapshot version in another tenant is allowed');
select throws_ok(
  format($q$insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
            schema_version, state)
          values (%L, 'intent.goal', gen_random_uuid(), 0, 1, '{}')$q$,
         current_setting('test.tenant_a')),
  '23514', 'new row for relation "snapshots" violates check constraint "snapshots_version_positive"',
  'a snapshot at version 0 is refused');
select throws_ok(
  format($q$insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
            schema_version, state)
          values (%L, 'intent.goal', gen_random_uuid(), 1, 1, '[]')$q$,
         current_setting('test.tenant_a')),
  '23514', 'new row for relation "snapshots" violates check constraint "snapshots_state_is_object"',
  'a snapshot state that is not a JSON object is refused');

select pg_temp.fresh_ids('command_1');
select lives_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (%L, %L, 'member', 'goal.create', '{}')$q$,
         current_setting('test.command_1'), current_setting('test.tenant_a')),
  'a well-formed command is accepted');
select is(
  (select status from intent.commands where command_id = current_setting('test.command_1')::uuid),
  'pending', 'a new command is pending');
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (%L, %L, 'member', 'goal.create', '{}')$q$,
         current_setting('test.command_1'), current_setting('test.tenant_a')),
  '23505', null, 'a duplicate command_id is refused');
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload,
            status)
          values (gen_random_uuid(), %L, 'member', 'goal.create', '{}', 'done')$q$,
         current_setting('test.tenant_a')),
  '23514', 'new row for relation "commands" violates check constraint "commands_status_known"',
  'an unknown command status is refused');
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (gen_random_uuid(), %L, 'member', 'goal.create', '[]')$q$,
         current_setting('test.tenant_a')),
  '23514', 'new row for relation "commands" violates check constraint "commands_payload_is_object"',
  'a command payload that is not a JSON object is refused');

-- Structure: RLS everywhere, a policy on every tenant-owned table ----------------------------
-- Queried over the whole schema, so that a table added later without RLS fails here.
select cmp_ok(
  (select count(*)::int from pg_class
    where relnamespace = 'intent'::regnamespace and relkind in ('r', 'p')),
  '>=', 4, 'schema intent has its tables (so the checks below are not vacuous)');
select is_empty(
  $q$select relname from pg_class
      where relnamespace = 'intent'::regnamespace and relkind in ('r', 'p')
        and not (relrowsecurity and relforcerowsecurity)$q$,
  'every table of schema intent has row level security enabled and forced');
select is_empty(
  $q$select c.relname from pg_class c
      where c.relnamespace = 'intent'::regnamespace and c.relkind in ('r', 'p')
        and exists (select from pg_attribute a
                     where a.attrelid = c.oid and a.attname = 'tenant_id'
                       and a.attnum > 0 and not a.attisdropped)
        and not exists (select from pg_policy p where p.polrelid = c.oid)$q$,
  'every table of schema intent with a tenant_id column has at least one policy');
-- Views run as their owner (postgres, BYPASSRLS) unless security_invoker is set, which would
-- silently bypass the policies of the tables they read.
select is_empty(
  $q$select c.relname from pg_class c
      where c.relnamespace = 'intent'::regnamespace and c.relkind = 'v'
        and not coalesce('security_invoker=true' = any (c.reloptions)
                         or 'security_invoker=on' = any (c.reloptions), false)$q$,
  'every view of schema intent is security_invoker');
select is_empty(
  $q$select polname from pg_policy p join pg_class c on c.oid = p.polrelid
      where c.relnamespace = 'intent'::regnamespace
        and (0 = any (p.polroles) or 'anon'::regrole = any (p.polroles))$q$,
  'no policy in schema intent applies to PUBLIC or anon');
select policies_are('intent', 'checkpoints', '{}'::name[],
  'intent.checkpoints has no policy: clients never see it');
select policy_cmd_is('intent', 'events', 'events_tenant_read', 'select',
  'events_tenant_read is a SELECT policy');
select policy_roles_are('intent', 'events', 'events_tenant_read', array['authenticated']::name[],
  'events_tenant_read applies to authenticated only');
select policy_cmd_is('intent', 'snapshots', 'snapshots_tenant_read', 'select',
  'snapshots_tenant_read is a SELECT policy');
select policy_roles_are('intent', 'snapshots', 'snapshots_tenant_read',
  array['authenticated']::name[], 'snapshots_tenant_read applies to authenticated only');
select policy_cmd_is('intent', 'commands', 'commands_own_read', 'select',
  'commands_own_read is a SELECT policy');
select policy_roles_are('intent', 'commands', 'commands_own_read',
  array['authenticated']::name[], 'commands_own_read applies to authenticated only');

select * from finish();
rollback;
