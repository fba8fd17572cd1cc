"""The database role the runtime connects as, named once.

The pump, the worker, the projection runner and the saga router connect as this role
(created by supabase/migrations/*_runtime_role.sql): it bypasses RLS, as the runtime works
across tenants, and holds only the privileges that migration and each projection table's
generated grants give it. Here (not in tools) because the generated SQL grants to it too.
"""

RUNTIME_ROLE = "intent_worker"
