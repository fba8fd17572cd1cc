-- One command at a time into another tenant (issue 18): a command type that names its
-- tenant (intent.command_types.tenant_field) is filed under that tenant, so a sender who is
-- not its member (creating a tenant, accepting an invitation, switching to one) puts the
-- command in that tenant's lane. Without a bound, one user could flood another tenant's
-- lane with such commands (each refused by its aggregate, but claimed and processed in the
-- tenant's turn). This trigger lets a user have at most one such command unfinished
-- (pending or dispatched) at a time; the next is refused with PT429 `busy` until it ends. A
-- retry of the same command id is not a second command, and a command filed under the
-- token's own tenant is not bounded here (the fair claims of 20261204190000 keep tenants
-- apart). A transaction-scoped advisory lock per user makes two concurrent submissions
-- take turns, so both cannot pass the check.

create index if not exists commands_unfinished_user_idx on intent.commands (user_id)
  where status in ('pending', 'dispatched');

create or replace function intent.one_command_into_another_tenant() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  own_tenant uuid := intent.current_tenant_id();
begin
  if new.user_id is null
     or new.tenant_id is not distinct from own_tenant
     or not intent.names_its_tenant(new.command_type) then
    return new;
  end if;
  -- Lock namespace of this guard (two-key advisory locks, apart from the ingress's).
  perform pg_catalog.pg_advisory_xact_lock(444465156, pg_catalog.hashtext(new.user_id::text));
  if exists (select from intent.commands c
              where c.user_id = new.user_id
                and c.status in ('pending', 'dispatched')
                and c.command_id <> new.command_id
                and c.tenant_id is distinct from own_tenant
                and intent.names_its_tenant(c.command_type)) then
    raise exception using
      errcode = 'PT429',
      message = 'You have a command into another tenant still running; send this one '
                'once it has finished.',
      hint = 'busy';
  end if;
  return new;
end
$$;

alter function intent.one_command_into_another_tenant() owner to postgres;
revoke all on function intent.one_command_into_another_tenant() from public, anon,
  authenticated, service_role;

drop trigger if exists commands_one_into_another_tenant on intent.commands;
create trigger commands_one_into_another_tenant
  before insert on intent.commands
  for each row execute function intent.one_command_into_another_tenant();
