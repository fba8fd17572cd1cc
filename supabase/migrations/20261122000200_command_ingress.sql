-- The SQL ingress: how a command gets into intent.commands.
--
--   public.submit_command(command_type, payload, command_id, correlation_id, traceparent)
--   public.command_status(command_id)
--
-- Both are called through PostgREST (`supabase.rpc(...)`, POST /rest/v1/rpc/<fn>) by
-- `authenticated` and `service_role`, never by `anon`. Tenant, user and role come from the
-- verified JWT (intent.current_tenant_id(), auth.uid(), auth.role()), never from arguments.
--
-- Refusals raise SQLSTATE PTxyz, which PostgREST answers with HTTP status xyz; the hint is
-- a stable machine-readable code, the message a sentence for people:
--
--   hint                  SQLSTATE  when
--   no_tenant             PT401     the JWT has no usable app_metadata.tenant_id
--   invalid_claims        PT401     the JWT's sub claim is not a UUID (or the claims are not JSON)
--   unknown_command_type  PT400     the command type is not in intent.command_types
--   forbidden             PT403     the JWT's role may not send this command type, or the
--                                   target aggregate is used by another tenant
--   malformed             PT400     payload not a JSON object, aggregate id field missing or
--                                   not a UUID, traceparent not W3C
--   payload_too_large     PT413     the payload's JSON text is over 64 KiB
--   command_id_conflict   PT409     the command id is already used by another tenant
--
-- Nothing is stored when a call is refused.

-- The allow list, generated from the Python registry ------------------------------------------
-- Filled by the generated `*_command_types.sql` migrations (`intent commands generate`), each a
-- full replace. Only the ingress (SECURITY DEFINER, owned by postgres) reads it.
create table intent.command_types (
  command_type text primary key,
  aggregate_type text not null,
  aggregate_id_field text not null,
  roles text[] not null,
  constraint command_types_names check (
    command_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'
    and aggregate_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'
    and aggregate_id_field ~ '^[A-Za-z_][A-Za-z0-9_]*$'
  ),
  constraint command_types_roles_present check (
    cardinality(roles) > 0 and array_position(roles, null) is null
  )
);
alter table intent.command_types enable row level security;
alter table intent.command_types force row level security;
-- No policy and no grant: clients never read or write the allow list.
revoke all on intent.command_types from public, anon, authenticated, service_role;

-- Indexes for "does this aggregate already belong to another tenant?" ------------------------
-- tenant_id is the last column so that the check is two index range probes (tenant below
-- and above the caller's) instead of a walk over the whole stream.
create index commands_aggregate_tenant_idx
  on intent.commands (aggregate_type, aggregate_id, tenant_id);
create index events_aggregate_tenant_idx
  on intent.events (aggregate_type, aggregate_id, tenant_id);

-- submit_command ------------------------------------------------------------------------------
create or replace function public.submit_command(
  command_type text,
  payload jsonb,
  command_id uuid default null,
  correlation_id uuid default null,
  traceparent text default null
) returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  max_payload_bytes constant integer := 65536;
  uuid_pattern constant text :=
    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
  -- Lock namespace of the ingress (two-key advisory locks, so it cannot meet the one-key
  -- locks of the pump and the worker).
  lock_namespace constant integer := 444465155;  -- 0x1A7E0003
  new_id uuid := coalesce(submit_command.command_id, pg_catalog.gen_random_uuid());
  caller_tenant uuid;
  caller_user uuid;
  caller_role text;
  known record;
  raw_id jsonb;
  target_id uuid;
  trace_parts text[];
  stored_tenant uuid;
  stored_status text;
begin
  -- Who is asking: the verified JWT only.
  begin
    caller_tenant := intent.current_tenant_id();
    caller_user := auth.uid();
    caller_role := auth.role();
  exception when invalid_text_representation then
    raise exception using
      errcode = 'PT401',
      message = 'The access token''s claims are unusable: sub must be a UUID.',
      hint = 'invalid_claims';
  end;
  if caller_tenant is null then
    raise exception using
      errcode = 'PT401',
      message = 'The access token carries no tenant (app_metadata.tenant_id); '
                'commands can only be sent on behalf of a tenant.',
      hint = 'no_tenant';
  end if;

  -- What is asked, and whether this role may ask it.
  select ct.aggregate_type, ct.aggregate_id_field, ct.roles
    into known
    from intent.command_types ct
   where ct.command_type = submit_command.command_type;
  if not found then
    raise exception using
      errcode = 'PT400',
      message = pg_catalog.format('Unknown command type %s.',
                                  coalesce(pg_catalog.quote_literal(
                                    pg_catalog.left(submit_command.command_type, 100)),
                                    'null')),
      hint = 'unknown_command_type';
  end if;
  if caller_role is null or not (caller_role = any (known.roles)) then
    raise exception using
      errcode = 'PT403',
      message = pg_catalog.format('Role %s may not send %s.',
                                  coalesce(caller_role, '(none)'),
                                  submit_command.command_type),
      hint = 'forbidden';
  end if;

  -- The payload's shape, as far as the ingress needs it (the domain validates the rest).
  if submit_command.payload is null
     or pg_catalog.jsonb_typeof(submit_command.payload) <> 'object' then
    raise exception using
      errcode = 'PT400',
      message = 'The payload must be a JSON object.',
      hint = 'malformed';
  end if;
  if pg_catalog.octet_length(submit_command.payload::text) > max_payload_bytes then
    raise exception using
      errcode = 'PT413',
      message = pg_catalog.format('The payload is larger than %s bytes of JSON.',
                                  max_payload_bytes),
      hint = 'payload_too_large';
  end if;
  raw_id := submit_command.payload -> known.aggregate_id_field;
  if raw_id is null
     or pg_catalog.jsonb_typeof(raw_id) <> 'string'
     or not ((raw_id #>> '{}') ~* uuid_pattern) then
    raise exception using
      errcode = 'PT400',
      message = pg_catalog.format('The payload field %s must be a UUID naming the target %s.',
                                  known.aggregate_id_field, known.aggregate_type),
      hint = 'malformed';
  end if;
  target_id := (raw_id #>> '{}')::uuid;

  -- W3C trace context: version-traceid-parentid-flags, lower-case hex; version ff and
  -- all-zero ids are invalid (the same rule as domain.contracts.Metadata).
  if submit_command.traceparent is not null then
    trace_parts := pg_catalog.string_to_array(submit_command.traceparent, '-');
    if not (submit_command.traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$')
       or trace_parts[1] = 'ff'
       or trace_parts[2] = pg_catalog.repeat('0', 32)
       or trace_parts[3] = pg_catalog.repeat('0', 16) then
      raise exception using
        errcode = 'PT400',
        message = 'traceparent is not a W3C trace context header '
                  '(version-traceid-parentid-flags, lower-case hex).',
        hint = 'malformed';
    end if;
  end if;

  -- One submission at a time per aggregate, until this transaction ends, so that two
  -- tenants cannot both claim a new aggregate id by racing each other.
  perform pg_catalog.pg_advisory_xact_lock(
    lock_namespace, pg_catalog.hashtext(known.aggregate_type || '/' || target_id::text));
  if exists (select from intent.events e
              where e.aggregate_type = known.aggregate_type and e.aggregate_id = target_id
                and e.tenant_id < caller_tenant)
     or exists (select from intent.events e
                 where e.aggregate_type = known.aggregate_type and e.aggregate_id = target_id
                   and e.tenant_id > caller_tenant)
     or exists (select from intent.commands c
                 where c.aggregate_type = known.aggregate_type and c.aggregate_id = target_id
                   and c.tenant_id < caller_tenant)
     or exists (select from intent.commands c
                 where c.aggregate_type = known.aggregate_type and c.aggregate_id = target_id
                   and c.tenant_id > caller_tenant) then
    raise exception using
      errcode = 'PT403',
      message = pg_catalog.format('This command may not target that %s.', known.aggregate_type),
      hint = 'forbidden';
  end if;

  -- Idempotent store: the same command id again (even concurrently) creates nothing new;
  -- a concurrent first insert is waited for by the unique index, then read back below.
  insert into intent.commands (
    command_id, tenant_id, user_id, role, command_type, aggregate_type, aggregate_id,
    payload, metadata, status
  ) values (
    new_id, caller_tenant, caller_user, caller_role, submit_command.command_type,
    known.aggregate_type, target_id, submit_command.payload,
    pg_catalog.jsonb_build_object(
      'tenant_id', caller_tenant,
      'user_id', caller_user,
      'role', caller_role,
      'correlation_id', coalesce(submit_command.correlation_id, pg_catalog.gen_random_uuid()),
      'causation_id', null,
      'traceparent', submit_command.traceparent,
      'occurred_at', pg_catalog.now(),
      'schema_version', 1
    ),
    'pending'
  )
  on conflict (command_id) do nothing
  returning status into stored_status;

  if found then
    -- A wake-up for the pumps; they re-query, so the payload says nothing.
    perform pg_catalog.pg_notify('intent_commands', '');
    return pg_catalog.jsonb_build_object('command_id', new_id, 'status', stored_status);
  end if;

  select c.tenant_id, c.status into stored_tenant, stored_status
    from intent.commands c
   where c.command_id = new_id;
  if not found or stored_tenant <> caller_tenant then
    raise exception using
      errcode = 'PT409',
      message = 'This command id is already in use; choose another.',
      hint = 'command_id_conflict';
  end if;
  return pg_catalog.jsonb_build_object('command_id', new_id, 'status', stored_status);
end
$$;

alter function public.submit_command(text, jsonb, uuid, uuid, text) owner to postgres;
revoke all on function public.submit_command(text, jsonb, uuid, uuid, text) from public, anon;
grant execute on function public.submit_command(text, jsonb, uuid, uuid, text)
  to authenticated, service_role;
comment on function public.submit_command(text, jsonb, uuid, uuid, text) is
  'Submit a command for the caller''s tenant (from the JWT). Returns {command_id, status}. '
  'Idempotent on command_id. Refusals: SQLSTATE PTxyz (HTTP xyz) with a stable code as hint.';

-- command_status ------------------------------------------------------------------------------
-- Runs as the caller, so the RLS policy of intent.commands applies; the explicit tenant
-- filter keeps roles that bypass RLS (service_role) to their token's tenant as well.
create or replace function public.command_status(command_id uuid) returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'command_id', c.command_id,
    'command_type', c.command_type,
    'status', c.status,
    'result', c.result,
    'error', c.error,
    'created_at', c.created_at,
    'updated_at', c.updated_at
  )
  from intent.commands c
  where c.command_id = command_status.command_id
    and c.tenant_id = (select intent.current_tenant_id())
$$;

alter function public.command_status(uuid) owner to postgres;
revoke all on function public.command_status(uuid) from public, anon;
grant execute on function public.command_status(uuid) to authenticated, service_role;
comment on function public.command_status(uuid) is
  'The status of one of the caller''s tenant''s commands, or null when it is not visible.';
