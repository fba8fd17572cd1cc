"""Row-level security lint: one model of tables, policies and grants, two ways to build it.

The live loader (live.py) reads a database's catalogs; the SQL loader (sql.py, grants.py)
replays migration files statement by statement from PostgreSQL's own parse tree (pglast).
Both feed the same rules (rules.py), so a migration is judged the same before and after it
is applied.

Rules (errors make the lint fail; warnings are printed only):

- rls-disabled / rls-not-forced: a table with a tenant_id column has RLS enabled and forced
  (not forced, the table's owner, who writes migrations, silently sees every tenant).
- no-tenant-policy: each of anon/authenticated that holds any privilege on a tenant table
  has a policy (for it or PUBLIC) whose condition references tenant_id.
- policy-not-tenant-scoped: permissive policies are OR-ed, so one permissive policy that
  ignores tenant_id opens every tenant's rows for its command, unless a restrictive policy
  that references tenant_id covers that command.
- truncate-granted: RLS does not apply to TRUNCATE, so a client must never hold it on a
  tenant table.
- anon-grant / anon-function: nothing is granted to anon (directly or through PUBLIC),
  except SELECT on the tables whose projection declares anon among its readers, and
  EXECUTE on the functions their anon policies call and on intent.current_tenant_id (the
  tenant claim's reader). Trigger functions are exempt: they cannot be called.
- user-metadata: no policy condition, nor a function it calls, reads user_metadata
  (raw_user_meta_data, the JWT's user_metadata): users edit those claims themselves.
- view-bypasses-rls: a view granted to a client runs with its owner's rights (and the owner
  bypasses RLS) unless it is security_invoker; a materialized view never applies RLS.
- no-rls-client-table (warning): a table without tenant_id that clients may use with RLS
  off. A warning, not an error: shared reference data (no tenant) is legitimate, but
  someone should have decided so.
- unmodelled / unparsed (SQL mode): statements that change privileges in ways the SQL
  loader cannot follow (ALTER DEFAULT PRIVILEGES, dynamic SQL in DO blocks) are warnings;
  a GRANT, REVOKE, policy or RLS statement it cannot read is an error, because what it
  cannot read it cannot vouch for.

SQL-mode approximations: unqualified names are in `public`; functions are tracked by name
(overloads share one entry); a new function is executable by PUBLIC (PostgreSQL's default)
until revoked.

Which tables anon may read is the application's to say: callers pass
declared_anon_readers(catalog) of their application's projection catalog.
"""

from __future__ import annotations

from tools.checks.rls.conditions import called_functions, reads_user_metadata, references_tenant
from tools.checks.rls.live import load_live
from tools.checks.rls.model import (
    CLIENT_ROLES,
    DEFAULT_SCHEMAS,
    PUBLIC,
    TENANT_COLUMN,
    Function,
    Model,
    Policy,
    Relation,
)
from tools.checks.rls.report import ERROR, WARNING, Finding, LintReport
from tools.checks.rls.rules import declared_anon_readers, lint
from tools.checks.rls.sql import load_sql

__all__ = [
    "CLIENT_ROLES",
    "DEFAULT_SCHEMAS",
    "ERROR",
    "PUBLIC",
    "TENANT_COLUMN",
    "WARNING",
    "Finding",
    "Function",
    "LintReport",
    "Model",
    "Policy",
    "Relation",
    "called_functions",
    "declared_anon_readers",
    "lint",
    "load_live",
    "load_sql",
    "reads_user_metadata",
    "references_tenant",
]
