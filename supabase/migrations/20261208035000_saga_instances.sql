-- Saga instances as the console sees them. An instance lives in Temporal (one workflow per
-- instance, its timers workflow timers), which a browser cannot reach; the saga workflow
-- records here what is worth seeing (pump/sagas/instances.py): the instance when its run
-- starts, its timers whenever they change, and its end. The row is a view of the workflow,
-- never its state: Temporal stays the source of truth, and a row may lag it by a step.
create table intent.saga_instances (
  workflow_id text primary key,  -- domain.saga.saga_workflow_id(saga, tenant, instance)
  tenant_id uuid not null,
  saga text not null,
  instance text not null,
  status text not null default 'running' check (status in ('running', 'completed')),
  outcome text,  -- Complete(outcome), once completed
  started_at timestamptz not null,
  -- Workflow time of the latest record: a late retry of an older record never wins.
  updated_at timestamptz not null,
  next_timer_at timestamptz,  -- the earliest of `timers`; null when none is pending
  timers jsonb not null default '{}'::jsonb,  -- timer name -> when it fires (ISO 8601)
  last_event_type text,  -- the latest event the instance applied, as of that record
  unique (tenant_id, saga, instance),
  check (status = 'running' or (next_timer_at is null and timers = '{}'::jsonb))
);

create index saga_instances_tenant_idx
  on intent.saga_instances (tenant_id, status, next_timer_at);

alter table intent.saga_instances enable row level security;
alter table intent.saga_instances force row level security;

create policy saga_instances_tenant_read on intent.saga_instances
  for select to authenticated
  using (tenant_id = (select intent.current_tenant_id()));

revoke all on intent.saga_instances from public, anon, authenticated;
grant select on intent.saga_instances to authenticated, service_role;
-- The saga worker's activity upserts (ON CONFLICT DO UPDATE reads the row it updates).
grant select, insert, update on intent.saga_instances to intent_worker;

-- public.saga_instances(): the caller's tenant's instances, for supabase-js (the intent
-- schema is not exposed): the running ones first (soonest timer first), then the latest
-- completed, at most max_count (1..1000). The tenant filter is explicit, as in read_stream,
-- besides the policy; as security invoker, a role that bypasses RLS still sees one tenant.
create or replace function public.saga_instances(max_count integer default 200)
returns table (
  workflow_id text,
  saga text,
  instance text,
  status text,
  outcome text,
  started_at timestamptz,
  updated_at timestamptz,
  next_timer_at timestamptz,
  timers jsonb,
  last_event_type text
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  max_page constant integer := 1000;
  caller_tenant uuid := intent.current_tenant_id();
begin
  if saga_instances.max_count is null or saga_instances.max_count < 1
     or saga_instances.max_count > max_page then
    raise exception using
      errcode = 'PT400',
      message = pg_catalog.format('max_count must be between 1 and %s.', max_page),
      hint = 'invalid_page';
  end if;
  return query
    select s.workflow_id, s.saga, s.instance, s.status, s.outcome, s.started_at,
           s.updated_at, s.next_timer_at, s.timers, s.last_event_type
      from intent.saga_instances s
     where s.tenant_id = caller_tenant
     order by s.status = 'completed', s.next_timer_at nulls last, s.updated_at desc
     limit saga_instances.max_count;
end
$$;

alter function public.saga_instances(integer) owner to postgres;
revoke all on function public.saga_instances(integer) from public, anon;
grant execute on function public.saga_instances(integer) to authenticated, service_role;
comment on function public.saga_instances(integer) is
  'The caller''s tenant''s saga instances: running first (soonest next timer first), then '
  'the latest completed; max_count is 1..1000 (PT400 invalid_page otherwise).';
