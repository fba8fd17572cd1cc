-- The console's traces: the causation tree of one correlation id, as `intent trace` prints it,
-- through public.console_trace(correlation_id uuid) -> jsonb (the flat nodes; the page hangs
-- each under its cause). Who sees what, the caller check (intent.console_caller) and the
-- refusals: 20261208040100_console_operations.sql. A caller sees their token's tenant's
-- commands and events, an operator every tenant's; at most 1,000 of each (`truncated` says
-- when more exist). No index serves the correlation id (one would cost every append), so
-- a trace reads the tables, as `intent trace` does.

create or replace function intent.console_uuid_or_null(p_text text) returns uuid
language sql
immutable
set search_path = ''
as $$
  select case when p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then p_text::uuid end
$$;

-- A trace's nodes: the commands and events that carry the correlation id, of the caller's
-- tenant (an operator's: of every tenant), as tools/checks/trace.py reads them.
create or replace function intent.console_trace_nodes(p_correlation text, p_tenant uuid,
                                                      p_limit integer)
returns table (commands jsonb, events jsonb)
language sql
stable
set search_path = ''
as $$
  with c as (
    select * from intent.commands x
     where x.metadata ->> 'correlation_id' = p_correlation
       and (p_tenant is null or x.tenant_id = p_tenant)
     order by x.created_at, x.command_id limit p_limit
  ), e as (
    select * from intent.events x
     where x.metadata ->> 'correlation_id' = p_correlation
       and (p_tenant is null or x.tenant_id = p_tenant)
     order by x.recorded_at, x.position limit p_limit
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
              'kind', 'command', 'id', c.command_id, 'tenant_id', c.tenant_id,
              'type', c.command_type, 'at', c.created_at,
              'causation_id', intent.console_uuid_or_null(c.metadata ->> 'causation_id'),
              'status', c.status, 'role', c.role, 'user_id', c.user_id,
              'aggregate', c.aggregate_type || '/' || c.aggregate_id::text,
              'error', c.error)), '[]'::jsonb) from c),
    (select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
              'kind', 'event', 'id', e.event_id, 'tenant_id', e.tenant_id,
              'type', e.event_type, 'at', e.recorded_at,
              'causation_id', intent.console_uuid_or_null(e.metadata ->> 'causation_id'),
              'aggregate', e.aggregate_type || '/' || e.aggregate_id::text,
              'version', e.version, 'position', e.position)), '[]'::jsonb) from e)
$$;

alter function intent.console_uuid_or_null(text) owner to postgres;
revoke all on function intent.console_uuid_or_null(text) from public, anon, authenticated;
alter function intent.console_trace_nodes(text, uuid, integer) owner to postgres;
revoke all on function intent.console_trace_nodes(text, uuid, integer)
  from public, anon, authenticated;

create or replace function public.console_trace(correlation_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  caller record;
  picked record;
  max_nodes constant integer := 1000;
begin
  select * into caller from intent.console_caller();
  if console_trace.correlation_id is null then
    raise exception using
      errcode = 'PT400',
      message = 'correlation_id is required.',
      hint = 'malformed';
  end if;
  select * into picked from intent.console_trace_nodes(
    console_trace.correlation_id::text,
    case when caller.operator then null else caller.tenant_id end,
    max_nodes + 1);
  return pg_catalog.jsonb_build_object(
    'scope', case when caller.operator then 'system' else 'tenant' end,
    'correlation_id', console_trace.correlation_id,
    'truncated', pg_catalog.jsonb_array_length(picked.commands) > max_nodes
                 or pg_catalog.jsonb_array_length(picked.events) > max_nodes,
    'nodes', (select coalesce(pg_catalog.jsonb_agg(n.node), '[]'::jsonb)
                from (select c.node from pg_catalog.jsonb_array_elements(picked.commands)
                             with ordinality c(node, i) where c.i <= max_nodes
                      union all
                      select e.node from pg_catalog.jsonb_array_elements(picked.events)
                             with ordinality e(node, i) where e.i <= max_nodes) n));
end
$$;

alter function public.console_trace(uuid) owner to postgres;
revoke all on function public.console_trace(uuid) from public, anon;
grant execute on function public.console_trace(uuid) to authenticated;
comment on function public.console_trace(uuid) is
  'The commands and events carrying one correlation id (as `intent trace` reads them), of the '
  'caller''s tenant, or of every tenant for an operator: {scope, correlation_id, truncated, '
  'nodes: [{kind, id, tenant_id, type, at, causation_id, status/role/user_id/error (commands) '
  '| version/position (events), aggregate}]}.';
