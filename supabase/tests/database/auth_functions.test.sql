-- The claim readers every policy depends on: auth.jwt(), auth.uid(), auth.role() of the local
-- Supabase stand-in, and intent.current_tenant_id() on top of them. They must follow the
-- request settings PostgREST writes (request.jwt.claims, and the older request.jwt.claim.*).
begin;
select plan(37);
\ir _setup.psql

select pg_temp.fresh_ids('user', 'other_user', 'tenant');

-- No claims at all --------------------------------------------------------------------------
select set_config('request.jwt.claims', '', true);
select set_config('request.jwt.claim', '', true);
select set_config('request.jwt.claim.sub', '', true);
select set_config('request.jwt.claim.role', '', true);
select is(auth.jwt(), null, 'no claims: auth.jwt() is null');
select is(auth.uid(), null, 'no claims: auth.uid() is null');
select is(auth.role(), null, 'no claims: auth.role() is null');
select is(intent.current_tenant_id(), null, 'no claims: intent.current_tenant_id() is null');

-- request.jwt.claims --------------------------------------------------------------------------
select pg_temp.raw_claims(json_build_object(
  'sub', current_setting('test.user'), 'role', 'authenticated', 'email', 'a@example.com',
  'app_metadata', json_build_object('tenant_id', current_setting('test.tenant'))));

select is(auth.jwt(), current_setting('request.jwt.claims')::jsonb,
  'auth.jwt() is the claims object');
select is(auth.jwt() ->> 'email', 'a@example.com', 'auth.jwt() exposes every claim');
select is(auth.uid(), current_setting('test.user')::uuid, 'auth.uid() is the sub claim');
select is(auth.role(), 'authenticated', 'auth.role() is the role claim');
select is(auth.email(), 'a@example.com', 'auth.email() is the email claim');
select is(intent.current_tenant_id(), current_setting('test.tenant')::uuid,
  'intent.current_tenant_id() is app_metadata.tenant_id, as a uuid');

-- Changing the setting mid-transaction is seen at once (the functions are not cached values).
select pg_temp.claims(current_setting('test.other_user'), null, 'service_role');
select is(auth.uid(), current_setting('test.other_user')::uuid,
  'auth.uid() follows a change of request.jwt.claims');
select is(auth.role(), 'service_role', 'auth.role() follows a change of request.jwt.claims');
select is(intent.current_tenant_id(), null,
  'intent.current_tenant_id() is null once the tenant claim is gone');

-- The older per-claim settings win where PostgREST still writes them --------------------------
select pg_temp.claims(current_setting('test.user'), null);
select set_config('request.jwt.claim.sub', current_setting('test.other_user'), true);
select is(auth.uid(), current_setting('test.other_user')::uuid,
  'request.jwt.claim.sub wins over the sub of request.jwt.claims');
select set_config('request.jwt.claim.role', 'anon', true);
select is(auth.role(), 'anon', 'request.jwt.claim.role wins over the role of request.jwt.claims');
select set_config('request.jwt.claim.sub', '', true);
select set_config('request.jwt.claim.role', '', true);
select is(auth.uid(), current_setting('test.user')::uuid,
  'an empty request.jwt.claim.sub falls back to request.jwt.claims');
select is(auth.role(), 'authenticated',
  'an empty request.jwt.claim.role falls back to request.jwt.claims');

-- request.jwt.claim (singular, the older whole-token setting) is read when claims is empty.
select set_config('request.jwt.claims', '', true);
select set_config('request.jwt.claim', json_build_object(
  'sub', current_setting('test.user'),
  'app_metadata', json_build_object('tenant_id', current_setting('test.tenant')))::text, true);
select is(auth.jwt() ->> 'sub', current_setting('test.user'),
  'auth.jwt() falls back to request.jwt.claim');
select is(intent.current_tenant_id(), current_setting('test.tenant')::uuid,
  'intent.current_tenant_id() reads the tenant through auth.jwt() (so through the fallback too)');
select set_config('request.jwt.claim', '', true);

-- intent.current_tenant_id(): a uuid, or null; never an error --------------------------------
select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', upper(current_setting('test.tenant')))));
select is(intent.current_tenant_id(), current_setting('test.tenant')::uuid,
  'an upper-case tenant UUID is the same tenant');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('provider', 'email')));
select is(intent.current_tenant_id(), null, 'app_metadata without tenant_id: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', 'tenant-a')));
select lives_ok($q$select intent.current_tenant_id()$q$,
  'a non-UUID tenant claim does not raise');
select is(intent.current_tenant_id(), null, 'a non-UUID tenant claim: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', current_setting('test.tenant') || '0')));
select is(intent.current_tenant_id(), null, 'a UUID with trailing characters: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', ' ' || current_setting('test.tenant'))));
select is(intent.current_tenant_id(), null, 'a UUID with leading characters: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', current_setting('test.tenant') || E'\n')));
select is(intent.current_tenant_id(), null, 'a UUID followed by a newline: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', 12345)));
select is(intent.current_tenant_id(), null, 'a numeric tenant claim: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', json_build_object('tenant_id', null)));
select is(intent.current_tenant_id(), null, 'a JSON null tenant claim: null');

select pg_temp.raw_claims(json_build_object(
  'app_metadata', current_setting('test.tenant')));
select is(intent.current_tenant_id(), null, 'app_metadata that is a string, not an object: null');

select pg_temp.raw_claims(json_build_object(
  'tenant_id', current_setting('test.tenant'),
  'user_metadata', json_build_object('tenant_id', current_setting('test.tenant'))));
select is(intent.current_tenant_id(), null,
  'a tenant_id outside app_metadata (top level, user_metadata) is ignored');

-- The same answers as the roles that call them in policies ------------------------------------
set local role authenticated;
select pg_temp.claims(current_setting('test.user'), current_setting('test.tenant'));
select is(intent.current_tenant_id(), current_setting('test.tenant')::uuid,
  'authenticated can call intent.current_tenant_id() and gets its tenant');
select is(auth.uid(), current_setting('test.user')::uuid, 'authenticated can call auth.uid()');
reset role;

set local role anon;
select is(auth.uid(), current_setting('test.user')::uuid, 'anon can call auth.uid()');
select lives_ok($q$select intent.current_tenant_id()$q$,
  'anon may call intent.current_tenant_id() (the tenant policy of an anon reader needs it)');
reset role;

-- Properties the policies rely on --------------------------------------------------------------
select volatility_is('intent', 'current_tenant_id', '{}'::name[], 'stable',
  'intent.current_tenant_id() is STABLE (evaluated once per query in the policies)');
select isnt_definer('intent', 'current_tenant_id', '{}'::name[],
  'intent.current_tenant_id() is not SECURITY DEFINER');
select is(
  (select proconfig from pg_proc where oid = 'intent.current_tenant_id()'::regprocedure),
  array['search_path=""'], 'intent.current_tenant_id() pins an empty search_path');

select * from finish();
rollback;
