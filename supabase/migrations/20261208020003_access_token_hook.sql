-- The tenant claim from Supabase's Custom Access Token Hook (issue 18, point 2), and the
-- two reads of public.memberships that clients need.
--
-- Supabase Auth calls public.custom_access_token_hook(event) as supabase_auth_admin before
-- it issues every access token (supabase/config.toml, [auth.hook.custom_access_token];
-- the same function on a hosted project). It puts the user's active tenant (their
-- membership with the latest active_at: joined or switched to last) and their role in it
-- into app_metadata.tenant_id and app_metadata.tenant_role, the claims
-- intent.current_tenant_id() and the policies read. A user with no membership gets neither
-- (a removed member's next refresh no longer carries the tenant), whatever app_metadata
-- held. The function is SECURITY DEFINER, owned by postgres (which bypasses RLS), so it
-- reads memberships without a policy for supabase_auth_admin; no client may call it.

create or replace function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  metadata jsonb;
  chosen record;
begin
  metadata := coalesce(claims -> 'app_metadata', '{}'::jsonb) - 'tenant_id' - 'tenant_role';
  if pg_catalog.jsonb_typeof(event -> 'user_id') = 'string'
     and (event ->> 'user_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
  then
    select m.tenant_id, m.role into chosen
      from public.memberships m
     where m.user_id = (event ->> 'user_id')::uuid
     order by m.active_at desc, m.tenant_id
     limit 1;
    if found then
      metadata := metadata || pg_catalog.jsonb_build_object(
        'tenant_id', chosen.tenant_id, 'tenant_role', chosen.role);
    end if;
  end if;
  return pg_catalog.jsonb_build_object(
    'claims', claims || pg_catalog.jsonb_build_object('app_metadata', metadata));
end
$$;

alter function public.custom_access_token_hook(jsonb) owner to postgres;
revoke all on function public.custom_access_token_hook(jsonb) from public, anon, authenticated;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
comment on function public.custom_access_token_hook(jsonb) is
  'Supabase Auth''s custom access token hook: the user''s active tenant and role into '
  'app_metadata.tenant_id and app_metadata.tenant_role. Only supabase_auth_admin calls it.';

-- The caller's memberships in every tenant (to pick one: tenancy.switch_tenant), newest
-- active first. Security definer: memberships has no client policy (projections/tenancy.py).
create or replace function public.my_memberships() returns table (
  tenant_id uuid, role text, active_at timestamptz
)
language sql
stable
security definer
set search_path = ''
as $$
  select m.tenant_id, m.role, m.active_at
    from public.memberships m
   where m.user_id = (select auth.uid())
   order by m.active_at desc, m.tenant_id
$$;

alter function public.my_memberships() owner to postgres;
revoke all on function public.my_memberships() from public, anon;
grant execute on function public.my_memberships() to authenticated;

-- The members of the caller's tenant, for its owners and admins only (as memberships says
-- now, not a token issued before a demotion); anyone else gets no rows.
create or replace function public.tenant_members() returns table (
  user_id uuid, role text, active_at timestamptz
)
language sql
stable
security definer
set search_path = ''
as $$
  select m.user_id, m.role, m.active_at
    from public.memberships m
   where m.tenant_id = (select intent.current_tenant_id())
     and exists (select from public.memberships me
                  where me.tenant_id = m.tenant_id
                    and me.user_id = (select auth.uid())
                    and me.role in ('owner', 'admin'))
   order by m.user_id
$$;

alter function public.tenant_members() owner to postgres;
revoke all on function public.tenant_members() from public, anon;
grant execute on function public.tenant_members() to authenticated;
