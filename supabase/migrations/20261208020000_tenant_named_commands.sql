-- Commands that name their tenant (issue 18, the tenancy slice): a command type may declare
-- a payload field as its tenant (intent.command_types.tenant_field, generated from
-- `registry.command(..., tenant=...)`); public.submit_command files such a command under
-- that tenant instead of the token's, so a user whose token has no tenant yet can create
-- one, or join one by invitation. The tenancy aggregate authorises the sender on the
-- verified user id (domain.senders), never on the token's tenant. Otherwise the function
-- is as in 20261204190100.
--
-- A user reads their own commands of those types wherever they were filed (a tenant created
-- by a token without one, or with another): the read policy and command_status say so.

alter table intent.command_types add column if not exists tenant_field text;

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
  raw_tenant jsonb;
  target_id uuid;
  trace_parts text[];
  stored_tenant uuid;
  stored_status text;
  out_of_bounds text;
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
  -- What is asked, and whether this role may ask it.
  select ct.aggregate_type, ct.aggregate_id_field, ct.roles, ct.payload_limits,
         ct.tenant_field
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

  -- The tenant the command is for: the token's, or, for a command type that names it in
  -- its payload (creating or joining a tenant), that one; its aggregate authorises the
  -- sender (domain.senders).
  if known.tenant_field is not null then
    raw_tenant := submit_command.payload -> known.tenant_field;
    if raw_tenant is null
       or pg_catalog.jsonb_typeof(raw_tenant) <> 'string'
       or not ((raw_tenant #>> '{}') ~* uuid_pattern) then
      raise exception using
        errcode = 'PT400',
        message = pg_catalog.format('The payload field %s must be a UUID naming the tenant '
                                    'the command is for.', known.tenant_field),
        hint = 'malformed';
    end if;
    caller_tenant := (raw_tenant #>> '{}')::uuid;
  elsif caller_tenant is null then
    raise exception using
      errcode = 'PT401',
      message = 'The access token carries no tenant (app_metadata.tenant_id); '
                'commands can only be sent on behalf of a tenant.',
      hint = 'no_tenant';
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

  -- Every field within the bounds its model declares (domain.bounds): the one declaration
  -- the edge function's schema and the domain's model also come from.
  out_of_bounds := intent.payload_problem(submit_command.payload, known.payload_limits);
  if out_of_bounds is not null then
    raise exception using
      errcode = 'PT400',
      message = pg_catalog.format('The payload field %s.', out_of_bounds),
      detail = pg_catalog.split_part(out_of_bounds, ' ', 1),
      hint = 'malformed';
  end if;

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

-- Whether a command type names its tenant in its payload (for the policy below, which may
-- not read intent.command_types itself).
create or replace function intent.names_its_tenant(command_type text) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (select from intent.command_types ct
                  where ct.command_type = names_its_tenant.command_type
                    and ct.tenant_field is not null)
$$;
alter function intent.names_its_tenant(text) owner to postgres;
revoke all on function intent.names_its_tenant(text) from public, anon;
grant execute on function intent.names_its_tenant(text) to authenticated, service_role;

drop policy if exists commands_own_read on intent.commands;
create policy commands_own_read on intent.commands
  for select to authenticated
  using (user_id = (select auth.uid())
         and (tenant_id = (select intent.current_tenant_id())
              or intent.names_its_tenant(command_type)));

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
    and (c.tenant_id = (select intent.current_tenant_id())
         or (c.user_id = (select auth.uid()) and intent.names_its_tenant(c.command_type)))
$$;
