-- Tenant isolation of the event store, seen the way PostgREST sees it: a request runs as
-- `authenticated` (or `anon`) with the verified JWT in request.jwt.claims, and the tenant is
-- app_metadata.tenant_id. Fixture rows are written as `postgres` (BYPASSRLS) first.
--
-- The tenants are fresh random UUIDs kept in custom settings (test.tenant_a, test.tenant_b),
-- so rows written by other suites into the same cluster cannot change the counts below.
begin;
select plan(67);
\ir _setup.psql

-- Fixtures --------------------------------------------------------------------------------
select pg_temp.fresh_ids('tenant_a', 'tenant_b', 'user_a', 'user_b', 'agg_a1', 'agg_a2', 'agg_b1');

-- Tenant A: 3 events, 1 snapshot, 2 commands of user A and 1 of another user. Tenant B: 2
-- events, 2 snapshots, 1 command.
-- Different counts on purpose, so that seeing the other tenant's rows cannot pass by chance.
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, payload)
values
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'intent.goal',
   current_setting('test.agg_a1')::uuid, 1, 'goal.created', '{"title":"a1"}'),
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'intent.goal',
   current_setting('test.agg_a1')::uuid, 2, 'goal.renamed', '{"title":"a1 bis"}'),
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid, 'intent.goal',
   current_setting('test.agg_a2')::uuid, 1, 'goal.created', '{"title":"a2"}'),
  (gen_random_uuid(), current_setting('test.tenant_b')::uuid, 'intent.goal',
   current_setting('test.agg_b1')::uuid, 1, 'goal.created', '{"title":"b1"}'),
  (gen_random_uuid(), current_setting('test.tenant_b')::uuid, 'intent.goal',
   current_setting('test.agg_b1')::uuid, 2, 'goal.renamed', '{"title":"b1 bis"}');

insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
                              schema_version, state)
values
  (current_setting('test.tenant_a')::uuid, 'intent.goal',
   current_setting('test.agg_a1')::uuid, 2, 1, '{"title":"a1 bis"}'),
  (current_setting('test.tenant_b')::uuid, 'intent.goal',
   current_setting('test.agg_b1')::uuid, 1, 1, '{"title":"b1"}'),
  (current_setting('test.tenant_b')::uuid, 'intent.goal',
   current_setting('test.agg_b1')::uuid, 2, 1, '{"title":"b1 bis"}');

insert into intent.commands (command_id, tenant_id, user_id, role, command_type,
                             aggregate_type, aggregate_id, payload)
values
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid,
   current_setting('test.user_a')::uuid, 'member', 'goal.create', 'intent.goal',
   current_setting('test.agg_a1')::uuid, '{"title":"a1"}'),
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid,
   current_setting('test.user_a')::uuid, 'member', 'goal.rename', 'intent.goal',
   current_setting('test.agg_a1')::uuid, '{"title":"a1 bis"}'),
  (gen_random_uuid(), current_setting('test.tenant_b')::uuid,
   current_setting('test.user_b')::uuid, 'member', 'goal.create', 'intent.goal',
   current_setting('test.agg_b1')::uuid, '{"title":"b1"}'),
  -- another user of tenant A: tenant A's first user must not read it
  (gen_random_uuid(), current_setting('test.tenant_a')::uuid,
   gen_random_uuid(), 'member', 'goal.rename', 'intent.goal',
   current_setting('test.agg_a1')::uuid, '{"title":"someone else''s"}');

insert into intent.checkpoints (consumer, position)
values ('pgtap.rls.consumer.' || current_setting('test.tenant_a'), 42);

-- Sanity: postgres (BYPASSRLS, and the owner) sees the fixtures it wrote. Without this, the
-- "sees nothing" tests below would pass just as well if the inserts had silently failed.
select is(
  (select count(*)::int from intent.events
    where tenant_id in (current_setting('test.tenant_a')::uuid,
                        current_setting('test.tenant_b')::uuid)),
  5, 'postgres sees all 5 fixture events (it bypasses RLS)');

-- A user of tenant A ------------------------------------------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));

select is(current_user::text, 'authenticated', 'the request runs as authenticated');
select is((select count(*)::int from intent.events), 3,
  'tenant A user sees exactly its 3 events');
select is((select count(*)::int from intent.events
            where tenant_id = current_setting('test.tenant_b')::uuid), 0,
  'tenant A user sees none of tenant B''s events, even when asking for them by tenant_id');
select is((select count(*)::int from intent.events
            where aggregate_id = current_setting('test.agg_b1')::uuid), 0,
  'tenant A user cannot read tenant B''s stream by aggregate id');
select is((select count(*)::int from intent.snapshots), 1,
  'tenant A user sees exactly its 1 snapshot');
select is((select count(*)::int from intent.snapshots
            where tenant_id = current_setting('test.tenant_b')::uuid), 0,
  'tenant A user sees none of tenant B''s snapshots');
select is((select count(*)::int from intent.commands), 2,
  'tenant A user sees exactly its own 2 commands');
select is((select count(*)::int from intent.commands
            where user_id is distinct from current_setting('test.user_a')::uuid), 0,
  'tenant A user sees none of another tenant A user''s commands');
select is((select count(*)::int from intent.commands
            where tenant_id = current_setting('test.tenant_b')::uuid), 0,
  'tenant A user sees none of tenant B''s commands');
select is(
  (select array_agg(distinct tenant_id::text) from intent.events),
  array[current_setting('test.tenant_a')],
  'every event visible to tenant A user belongs to tenant A');

-- Writes are refused outright for clients (no INSERT/UPDATE/DELETE grant), whatever the rows.
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 3, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg_a1')),
  '42501', null, 'tenant A user cannot INSERT an event, not even into its own stream');
select throws_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 3, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_b'), current_setting('test.agg_b1')),
  '42501', null, 'tenant A user cannot INSERT an event into tenant B');
select throws_ok(
  $q$update intent.events set payload = '{"hacked":true}'$q$,
  '42501', null, 'tenant A user cannot UPDATE events');
select throws_ok(
  $q$delete from intent.events$q$,
  '42501', null, 'tenant A user cannot DELETE events');
select throws_ok(
  format($q$insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
            schema_version, state)
          values (%L, 'intent.goal', %L, 9, 1, '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg_a1')),
  '42501', null, 'tenant A user cannot INSERT a snapshot');
select throws_ok(
  $q$update intent.snapshots set state = '{"hacked":true}'$q$,
  '42501', null, 'tenant A user cannot UPDATE snapshots');
select throws_ok(
  $q$delete from intent.snapshots$q$,
  '42501', null, 'tenant A user cannot DELETE snapshots');
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (gen_random_uuid(), %L, 'member', 'goal.create', '{}')$q$,
         current_setting('test.tenant_a')),
  '42501', null, 'tenant A user cannot INSERT a command directly (only through the RPC)');
select throws_ok(
  $q$update intent.commands set status = 'processed'$q$,
  '42501', null, 'tenant A user cannot UPDATE commands');
select throws_ok(
  $q$delete from intent.commands$q$,
  '42501', null, 'tenant A user cannot DELETE commands');
select throws_ok(
  $q$select count(*) from intent.checkpoints$q$,
  '42501', null, 'authenticated cannot read intent.checkpoints');
select throws_ok(
  $q$truncate intent.events$q$,
  '42501', null, 'tenant A user cannot TRUNCATE events');

-- A user of tenant B sees B's rows and only those --------------------------------------------
select pg_temp.claims(current_setting('test.user_b'), current_setting('test.tenant_b'));

select is((select count(*)::int from intent.events), 2,
  'tenant B user sees exactly its 2 events');
select is((select count(*)::int from intent.snapshots), 2,
  'tenant B user sees exactly its 2 snapshots');
select is((select count(*)::int from intent.commands), 1,
  'tenant B user sees exactly its 1 command');
select is((select count(*)::int from intent.events
            where tenant_id = current_setting('test.tenant_a')::uuid), 0,
  'tenant B user sees none of tenant A''s events');

-- The tenant claim written in upper case is the same UUID, so the same tenant.
select pg_temp.claims(current_setting('test.user_a'), upper(current_setting('test.tenant_a')));
select is((select count(*)::int from intent.events), 3,
  'an upper-case tenant UUID in the claim is still tenant A');

-- Claims that name no usable tenant see nothing, and do not fail -------------------------------
select pg_temp.claims(current_setting('test.user_a'), null);
select is((select count(*)::int from intent.events), 0, 'no app_metadata: no events');
select is((select count(*)::int from intent.snapshots), 0, 'no app_metadata: no snapshots');
select is((select count(*)::int from intent.commands), 0, 'no app_metadata: no commands');

select pg_temp.raw_claims(json_build_object(
  'sub', current_setting('test.user_a'), 'role', 'authenticated',
  'app_metadata', json_build_object('provider', 'email')));
select is((select count(*)::int from intent.events), 0,
  'app_metadata without tenant_id: no events');

select pg_temp.claims(current_setting('test.user_a'), 'not-a-uuid');
select is((select count(*)::int from intent.events), 0, 'non-UUID tenant claim: no events');
select is((select count(*)::int from intent.snapshots), 0, 'non-UUID tenant claim: no snapshots');
select is((select count(*)::int from intent.commands), 0, 'non-UUID tenant claim: no commands');

select pg_temp.claims(current_setting('test.user_a'), '');
select is((select count(*)::int from intent.events), 0, 'empty tenant claim: no events');

-- A UUID followed by junk must not be accepted as a prefix match.
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a') || 'x');
select is((select count(*)::int from intent.events), 0, 'tenant UUID with a suffix: no events');

select pg_temp.raw_claims(json_build_object(
  'sub', current_setting('test.user_a'), 'role', 'authenticated',
  'app_metadata', json_build_object('tenant_id', json_build_array(current_setting('test.tenant_a')))));
select is((select count(*)::int from intent.events), 0,
  'tenant claim that is an array, not a string: no events');

-- The tenant is taken from app_metadata (set by the service) only: a tenant_id the user can
-- write themselves (user_metadata), or one at the top level of the token, is ignored.
select pg_temp.raw_claims(json_build_object(
  'sub', current_setting('test.user_a'), 'role', 'authenticated',
  'user_metadata', json_build_object('tenant_id', current_setting('test.tenant_a'))));
select is((select count(*)::int from intent.events), 0,
  'tenant_id in user_metadata is ignored: no events');

select pg_temp.raw_claims(json_build_object(
  'sub', current_setting('test.user_a'), 'role', 'authenticated',
  'tenant_id', current_setting('test.tenant_a')));
select is((select count(*)::int from intent.events), 0,
  'tenant_id at the top level of the token is ignored: no events');

select set_config('request.jwt.claims', '', true);
select is((select count(*)::int from intent.events), 0, 'empty claims setting: no events');
select is((select count(*)::int from intent.commands), 0, 'empty claims setting: no commands');

reset role;

-- anon: no access to the schema's tables (it may only resolve the tenant claim) ---------------
set local role anon;
select pg_temp.claims(null, current_setting('test.tenant_a'), 'anon');

select throws_ok($q$select count(*) from intent.events$q$, '42501', null,
  'anon cannot read events (even with a tenant claim)');
select throws_ok($q$select count(*) from intent.snapshots$q$, '42501', null,
  'anon cannot read snapshots');
select throws_ok($q$select count(*) from intent.commands$q$, '42501', null,
  'anon cannot read commands');
select throws_ok($q$select count(*) from intent.checkpoints$q$, '42501', null,
  'anon cannot read checkpoints');
select throws_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (gen_random_uuid(), %L, 'anon', 'goal.create', '{}')$q$,
         current_setting('test.tenant_a')),
  '42501', null, 'anon cannot INSERT a command');
select lives_ok($q$select intent.current_tenant_id()$q$,
  'anon may call intent.current_tenant_id() (the tenant policy of an anon reader needs it)');

reset role;

-- service_role: bypasses RLS, sees every tenant, and may append ------------------------------
set local role service_role;
select set_config('request.jwt.claims', '{"role":"service_role"}', true);

select is(
  (select count(*)::int from intent.events
    where tenant_id in (current_setting('test.tenant_a')::uuid,
                        current_setting('test.tenant_b')::uuid)),
  5, 'service_role sees the events of both tenants');
select is(
  (select count(*)::int from intent.snapshots
    where tenant_id in (current_setting('test.tenant_a')::uuid,
                        current_setting('test.tenant_b')::uuid)),
  3, 'service_role sees the snapshots of both tenants');
select is(
  (select count(*)::int from intent.commands
    where tenant_id in (current_setting('test.tenant_a')::uuid,
                        current_setting('test.tenant_b')::uuid)),
  4, 'service_role sees the commands of both tenants, every user''s');
select is(
  (select count(*)::int from intent.checkpoints
    where consumer = 'pgtap.rls.consumer.' || current_setting('test.tenant_a')),
  1, 'service_role sees checkpoints');
select lives_ok(
  format($q$insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
            version, event_type, payload)
          values (gen_random_uuid(), %L, 'intent.goal', %L, 3, 'goal.renamed', '{}')$q$,
         current_setting('test.tenant_a'), current_setting('test.agg_a1')),
  'service_role can append an event (identity column needs no sequence grant)');
select lives_ok(
  format($q$insert into intent.commands (command_id, tenant_id, role, command_type, payload)
          values (gen_random_uuid(), %L, 'member', 'goal.create', '{}')$q$,
         current_setting('test.tenant_a')),
  'service_role can insert a command');

reset role;

-- The appended event is visible to tenant A, and only to tenant A.
set local role authenticated;
select pg_temp.claims(current_setting('test.user_a'), current_setting('test.tenant_a'));
select is((select count(*)::int from intent.events), 4,
  'tenant A user now sees the event service_role appended');
reset role;

-- Privileges, as the catalog states them ----------------------------------------------------
select schema_privs_are('intent', 'anon', array['USAGE']::name[],
  'anon has USAGE on schema intent and nothing more');
select schema_privs_are('intent', 'authenticated', array['USAGE']::name[],
  'authenticated has USAGE (only) on schema intent');
select table_privs_are('intent', 'events', 'anon', '{}'::name[],
  'anon has no privilege on intent.events');
select table_privs_are('intent', 'snapshots', 'anon', '{}'::name[],
  'anon has no privilege on intent.snapshots');
select table_privs_are('intent', 'commands', 'anon', '{}'::name[],
  'anon has no privilege on intent.commands');
select table_privs_are('intent', 'checkpoints', 'anon', '{}'::name[],
  'anon has no privilege on intent.checkpoints');
select table_privs_are('intent', 'events', 'authenticated', array['SELECT']::name[],
  'authenticated may only SELECT intent.events');
select table_privs_are('intent', 'snapshots', 'authenticated', array['SELECT']::name[],
  'authenticated may only SELECT intent.snapshots');
select table_privs_are('intent', 'commands', 'authenticated', array['SELECT']::name[],
  'authenticated may only SELECT intent.commands');
select table_privs_are('intent', 'checkpoints', 'authenticated', '{}'::name[],
  'authenticated has no privilege on intent.checkpoints');
-- No privilege at all is granted to PUBLIC on any table of the schema (that would reach anon).
select is_empty(
  $q$select c.relname from pg_class c
      cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      where c.relnamespace = 'intent'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
        and a.grantee = 0$q$,
  'no table or view of schema intent grants anything to PUBLIC');
-- Every table of the schema is closed to anon, including tables added later.
select is_empty(
  $q$select c.relname from pg_class c
      where c.relnamespace = 'intent'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
        and has_table_privilege('anon', c.oid,
              'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')$q$,
  'anon holds no table privilege on any relation of schema intent');

select * from finish();
rollback;
