-- A command's payload is its sender's data: a signed-in user reads their own commands
-- only, not every command of their tenant. Roles that bypass RLS (service_role, the
-- runtime) are unaffected; command_status keeps its tenant filter for them.
drop policy commands_tenant_read on intent.commands;
create policy commands_own_read on intent.commands
  for select to authenticated
  using (tenant_id = (select intent.current_tenant_id())
         and user_id = (select auth.uid()));
