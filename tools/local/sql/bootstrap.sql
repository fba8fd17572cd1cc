-- The local stand-in for what every hosted Supabase project already has.
-- Run by `intent db start|reset` as the cluster superuser (supabase_admin) before the
-- migrations; idempotent; never pushed to a hosted project (it is not in supabase/migrations).
-- Local development only: the passwords below are the well-known local ones.

-- Roles ----------------------------------------------------------------------------------
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin inherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin inherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres login;
  end if;
  -- The runtime's role (supabase/migrations/*_runtime_role.sql grants it what it needs).
  -- On hosted Supabase `postgres` may create a BYPASSRLS role (supautils) and the
  -- migration does; here `postgres` is an ordinary role, so the superuser creates it.
  if not exists (select from pg_roles where rolname = 'intent_worker') then
    create role intent_worker nologin inherit bypassrls;
  end if;
end
$$;
-- Locally the runtime logs in as it with the well-known local password.
alter role intent_worker with login inherit password 'postgres';
-- The feed's held-back gauge reads other sessions' start, state and query (pg_stat_activity).
grant pg_read_all_stats to intent_worker;

-- As on hosted: `postgres` is not a superuser; it owns the project's objects and bypasses RLS.
alter role postgres with nosuperuser login createrole createdb replication bypassrls
  password 'postgres';
alter role authenticator with login noinherit password 'postgres';
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role, supabase_realtime_admin to postgres;
grant pg_read_all_stats, pg_signal_backend to postgres;

-- The project database (whatever its name) belongs to `postgres`, as on hosted.
do $$
begin
  execute format('alter database %I owner to postgres', current_database());
  execute format('alter database %I set search_path = "$user", public, extensions',
                 current_database());
end
$$;

-- Extensions -----------------------------------------------------------------------------
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
do $$
begin
  -- pgTAP is what `supabase test db` uses; optional so that a machine without it still boots.
  if exists (select from pg_available_extensions where name = 'pgtap') then
    create extension if not exists pgtap with schema extensions;
  end if;
end
$$;

-- auth -----------------------------------------------------------------------------------
create schema if not exists auth;
grant usage on schema auth to postgres, anon, authenticated, service_role;

create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
grant select, references on auth.users to postgres;
grant all on auth.users to service_role;

-- What the local /auth/v1 (tools/gateway/auth_api, a development stand-in for GoTrue) needs:
-- GoTrue's own columns and tables, under GoTrue's names, owned by the role it logs in as.
do $$
begin
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin login noinherit;
  end if;
end
$$;
alter role supabase_auth_admin with login noinherit password 'postgres';
alter role supabase_auth_admin set search_path = auth;
grant usage, create on schema auth to supabase_auth_admin;
-- As on hosted: the custom access token hook in public is called as supabase_auth_admin
-- (the hook's migration grants it EXECUTE on the function).
grant usage on schema public to supabase_auth_admin;

alter table auth.users
  add column if not exists encrypted_password varchar(255),
  add column if not exists email_confirmed_at timestamptz,
  add column if not exists invited_at timestamptz,
  add column if not exists confirmation_token varchar(255),
  add column if not exists confirmation_sent_at timestamptz,
  add column if not exists recovery_token varchar(255),
  add column if not exists recovery_sent_at timestamptz,
  add column if not exists email_change varchar(255),
  add column if not exists email_change_sent_at timestamptz,
  add column if not exists last_sign_in_at timestamptz,
  add column if not exists is_super_admin boolean,
  add column if not exists phone text default null,
  add column if not exists phone_confirmed_at timestamptz,
  add column if not exists banned_until timestamptz,
  add column if not exists is_sso_user boolean not null default false,
  add column if not exists deleted_at timestamptz,
  add column if not exists is_anonymous boolean not null default false;
do $$
begin
  if not exists (select from information_schema.columns
                 where table_schema = 'auth' and table_name = 'users'
                   and column_name = 'confirmed_at') then
    alter table auth.users add column confirmed_at timestamptz
      generated always as (least(email_confirmed_at, phone_confirmed_at)) stored;
  end if;
end
$$;
create unique index if not exists users_email_partial_key on auth.users (email)
  where is_sso_user = false;
create unique index if not exists users_phone_key on auth.users (phone);
alter table auth.users owner to supabase_auth_admin;

create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  factor_id uuid,
  aal text,
  not_after timestamptz,
  refreshed_at timestamp,
  user_agent text,
  ip inet,
  tag text
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);
alter table auth.sessions owner to supabase_auth_admin;

create table if not exists auth.refresh_tokens (
  instance_id uuid,
  id bigint generated by default as identity primary key,
  token varchar(255) unique,
  user_id varchar(255),
  revoked boolean,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  parent varchar(255),
  session_id uuid references auth.sessions (id) on delete cascade
);
create index if not exists refresh_tokens_session_id_revoked_idx
  on auth.refresh_tokens (session_id, revoked);
create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);
alter table auth.refresh_tokens owner to supabase_auth_admin;
grant all on auth.users, auth.sessions, auth.refresh_tokens to supabase_auth_admin;
grant all on auth.sessions, auth.refresh_tokens to service_role;
grant select on auth.sessions, auth.refresh_tokens to postgres;

-- The verified JWT's claims, as PostgREST and Realtime set them for each request.
create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claims', true), ''),
    nullif(current_setting('request.jwt.claim', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role(), auth.email()
  to postgres, anon, authenticated, service_role;

-- Realtime -------------------------------------------------------------------------------
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to postgres;

create schema if not exists realtime authorization supabase_realtime_admin;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

create table if not exists realtime.messages (
  id uuid not null default extensions.gen_random_uuid(),
  topic text not null,
  extension text not null,
  event text,
  payload jsonb,
  private boolean default false,
  inserted_at timestamp not null default now(),
  updated_at timestamp not null default now(),
  primary key (id, inserted_at)
);
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
grant select, insert on realtime.messages to anon, authenticated;
grant all on realtime.messages to postgres, service_role;

-- The topic being authorised: Realtime sets it while it evaluates policies on messages.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

-- Broadcast from the database. Like the hosted one it never raises: a failure to broadcast
-- must not roll back the write that caused it, so errors become a WARNING.
create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
declare
  message_id uuid := extensions.gen_random_uuid();
begin
  begin
    perform set_config('realtime.topic', topic, true);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (
      message_id,
      coalesce(payload, '{}'::jsonb) || jsonb_build_object('id', message_id),
      event, topic, private, 'broadcast'
    );
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
  row_data jsonb := case when level = 'ROW' and new is not null then to_jsonb(new) end;
  old_data jsonb := case when level = 'ROW' and old is not null then to_jsonb(old) end;
begin
  perform realtime.send(
    jsonb_build_object(
      'record', row_data, 'old_record', old_data, 'operation', operation,
      'table', table_name, 'schema', table_schema
    ),
    event_name, topic_name, true
  );
end
$$;

alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  owner to supabase_realtime_admin;
grant execute on function realtime.topic() to postgres, anon, authenticated, service_role;
grant execute on function realtime.send(jsonb, text, text, boolean),
  realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  to postgres, authenticated, service_role;
