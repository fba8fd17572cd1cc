-- The runtime's own role: the pump, the worker, the projection runner and the saga router
-- connect as `intent_worker`, not as `postgres` (which owns every object and may change
-- any of them). It bypasses RLS, as the runtime works across tenants, but holds only the
-- privileges below: no DDL, no TRUNCATE, no UPDATE or DELETE of events, nothing in auth,
-- and no access to the allow list or to anything a migration did not grant it.
--
-- On hosted Supabase: this migration creates the role without a password; give it one
-- and connect through the pooler as `intent_worker.<project-ref>`:
--   alter role intent_worker with login password '<a secret of yours>';
-- The local bootstrap (tools/sql/bootstrap.sql) has created it already, with the local
-- password.
do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'intent_worker') then
    create role intent_worker nologin inherit bypassrls;
  end if;
end
$$;

grant usage on schema intent to intent_worker;

-- Commands: claimed, read and recorded by the pump and the worker; inserted by sagas.
grant select, insert, update on intent.commands to intent_worker;
grant select, insert, update on intent.batches to intent_worker;
-- Events: read and appended, never changed; position and transaction id are the database's.
grant select on intent.events to intent_worker;
grant insert (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
              schema_version, payload, metadata, recorded_at) on intent.events to intent_worker;
-- Snapshots: read and written; those found wrong by verification are deleted.
grant select, insert, delete on intent.snapshots to intent_worker;
-- Checkpoints of the projection runner and the saga router.
grant select, insert, update on intent.checkpoints to intent_worker;

-- Read models: every projection table is written by the runtime. Tables a later migration
-- creates get the same grants from the generated SQL (projections.sql.access_ddl).
grant select, insert, update, delete on public.stock_levels, public.order_summaries
  to intent_worker;

-- Not granted here: pg_read_all_stats, which lets the feed's held-back gauge see the
-- holding transaction's start, state and query in other roles' sessions (its id is visible
-- to every role). Where `postgres` may grant it, do so once:
--   grant pg_read_all_stats to intent_worker;
-- The local bootstrap does.
