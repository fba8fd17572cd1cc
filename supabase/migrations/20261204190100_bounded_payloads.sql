-- Bounded inputs at the SQL ingress: every command type carries the limits of its payload's
-- fields (intent.command_types.payload_limits, generated from the Python models with the
-- default bounds of domain.bounds: int64 integers, finite doubles, strings of at most 16,384
-- characters unless the model declares tighter ones), and public.submit_command refuses a
-- payload outside them with PT400 `malformed`, the field named in the message and in the
-- detail. Nothing is stored. The function is otherwise as in 20261122000200.

alter table intent.command_types
  add column payload_limits jsonb not null default '[]'::jsonb,
  add constraint command_types_limits_array check (jsonb_typeof(payload_limits) = 'array');

-- The first field of `payload` outside `limits` ([{field, path, type, minimum, maximum,
-- exclusiveMinimum, exclusiveMaximum, minLength, maxLength, required, properties}], path a
-- JSON path to the field's values), as "<field> <what is wrong>", or null when every field
-- is within. An object's `required` keys must be present and, when `properties` is given,
-- no other key; the payload's nesting is at most `maxDepth`; a null value is left to the
-- domain's model (nullable or not).
create or replace function intent.payload_problem(payload jsonb, limits jsonb) returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  limit_ jsonb;
  value_ jsonb;
  kind text;
  expected text;
  number_ numeric;
  length_ integer;
  field_ text;
  key_ text;
  prefix text;
begin
  for limit_ in select l from pg_catalog.jsonb_array_elements(limits) as l loop
    field_ := limit_ ->> 'field';
    expected := limit_ ->> 'type';
    prefix := case when field_ = '(payload)' then '' else field_ || '.' end;
    for value_ in
      select v from pg_catalog.jsonb_path_query(payload, (limit_ ->> 'path')::jsonpath) as v
    loop
      kind := pg_catalog.jsonb_typeof(value_);
      continue when kind = 'null';
      if expected in ('integer', 'number') then
        if kind <> 'number' then
          return pg_catalog.format('%s must be a %s', field_,
                                   case expected when 'integer' then 'whole number'
                                   else 'number' end);
        end if;
        number_ := (value_ #>> '{}')::numeric;
        if expected = 'integer' and number_ <> pg_catalog.trunc(number_) then
          return pg_catalog.format('%s must be a whole number', field_);
        end if;
        if number_ < (limit_ ->> 'minimum')::numeric then
          return pg_catalog.format('%s must be at least %s', field_, limit_ ->> 'minimum');
        end if;
        if number_ <= (limit_ ->> 'exclusiveMinimum')::numeric then
          return pg_catalog.format('%s must be greater than %s', field_,
                                   limit_ ->> 'exclusiveMinimum');
        end if;
        if number_ > (limit_ ->> 'maximum')::numeric then
          return pg_catalog.format('%s must be at most %s', field_, limit_ ->> 'maximum');
        end if;
        if number_ >= (limit_ ->> 'exclusiveMaximum')::numeric then
          return pg_catalog.format('%s must be less than %s', field_,
                                   limit_ ->> 'exclusiveMaximum');
        end if;
      elsif expected = 'object' then
        if kind <> 'object' then
          return pg_catalog.format('%s must be an object', field_);
        end if;
        select k into key_
          from pg_catalog.jsonb_array_elements_text(limit_ -> 'required') as k
         where not (value_ ? k)
         limit 1;
        if key_ is not null then
          return pg_catalog.format('%s is required', prefix || key_);
        end if;
        -- Nesting, counted as domain.bounds counts it (the payload itself is level 1): a
        -- container at path level maxDepth is one level too deep.
        if limit_ ? 'maxDepth' and pg_catalog.jsonb_path_exists(value_, pg_catalog.format(
             'strict $.**{%s} ? (@.type() == "object" || @.type() == "array")',
             (limit_ ->> 'maxDepth')::integer)::jsonpath) then
          return pg_catalog.format('%s is nested more than %s levels deep', field_,
                                   limit_ ->> 'maxDepth');
        end if;
        if limit_ ? 'properties' then
          select k into key_
            from pg_catalog.jsonb_object_keys(value_) as k
           where not ((limit_ -> 'properties') ? k)
           limit 1;
          if key_ is not null then
            return pg_catalog.format('%s is not a known field', prefix || key_);
          end if;
        end if;
      elsif expected = 'string' then
        if kind <> 'string' then
          return pg_catalog.format('%s must be a string', field_);
        end if;
        length_ := pg_catalog.char_length(value_ #>> '{}');
        if length_ < (limit_ ->> 'minLength')::integer then
          return pg_catalog.format('%s must be at least %s characters', field_,
                                   limit_ ->> 'minLength');
        end if;
        if length_ > (limit_ ->> 'maxLength')::integer then
          return pg_catalog.format('%s must be at most %s characters', field_,
                                   limit_ ->> 'maxLength');
        end if;
      end if;
    end loop;
  end loop;
  return null;
end
$$;
revoke all on function intent.payload_problem(jsonb, jsonb) from public;

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
  if caller_tenant is null then
    raise exception using
      errcode = 'PT401',
      message = 'The access token carries no tenant (app_metadata.tenant_id); '
                'commands can only be sent on behalf of a tenant.',
      hint = 'no_tenant';
  end if;

  -- What is asked, and whether this role may ask it.
  select ct.aggregate_type, ct.aggregate_id_field, ct.roles, ct.payload_limits
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
