-- The console's snapshot markers: which versions of one of the caller's aggregates have a
-- stored snapshot, so the aggregate inspector can mark them in its version stepper.
--
--   public.aggregate_snapshots(aggregate_type, aggregate_id)
--     -> [{version, schema_version, taken_at}, ...] in version order ([] when there are none
--        or the aggregate is not the caller's)
--
-- The states are left out on purpose: load_aggregate hands out the newest one, and a marker
-- list stays small however large a state grows. Like read_stream it runs as the caller
-- (SECURITY INVOKER), so the RLS policy of intent.snapshots applies, and filters by the
-- token's tenant explicitly, which keeps roles that bypass RLS (service_role) to their own
-- tenant and lets the primary key serve the read. `anon` may not call it.
--
-- Refusals: SQLSTATE PT400 (PostgREST answers HTTP 400) with the stable code in HINT:
--   malformed      aggregate_type or aggregate_id missing

create or replace function public.aggregate_snapshots(aggregate_type text, aggregate_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  caller_tenant uuid := intent.current_tenant_id();
  found jsonb;
begin
  if aggregate_snapshots.aggregate_type is null or aggregate_snapshots.aggregate_id is null then
    raise exception using
      errcode = 'PT400',
      message = 'aggregate_type and aggregate_id are required.',
      hint = 'malformed';
  end if;

  select coalesce(
           pg_catalog.jsonb_agg(
             pg_catalog.jsonb_build_object(
               'version', s.version,
               'schema_version', s.schema_version,
               'taken_at', s.created_at)
             order by s.version),
           '[]'::jsonb)
    into found
    from intent.snapshots s
   where s.tenant_id = caller_tenant
     and s.aggregate_type = aggregate_snapshots.aggregate_type
     and s.aggregate_id = aggregate_snapshots.aggregate_id;

  return found;
end
$$;

alter function public.aggregate_snapshots(text, uuid) owner to postgres;
revoke all on function public.aggregate_snapshots(text, uuid) from public, anon;
grant execute on function public.aggregate_snapshots(text, uuid) to authenticated, service_role;
comment on function public.aggregate_snapshots(text, uuid) is
  'The stored snapshots of one of the caller''s tenant''s aggregates, for the console''s '
  'markers: [{version, schema_version, taken_at}] in version order; [] for an aggregate the '
  'caller cannot see.';
