-- Read models may declare `anon` as a reader. Their tenant policy calls
-- intent.current_tenant_id(), so anon needs to reach that one function: without a tenant
-- claim it answers null and the policy shows no rows (rather than failing the request).
-- Nothing else in schema intent is granted to anon: its tables revoke anon explicitly and
-- its functions revoke PUBLIC.
grant usage on schema intent to anon;
grant execute on function intent.current_tenant_id() to anon;
