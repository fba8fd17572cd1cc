"""`/auth/v1` of the local gateway: a development stand-in for Supabase Auth, not GoTrue.

It answers the part of GoTrue's API the official clients call (sign-up, the password and
refresh-token grants, the signed-in user, logout, settings, health and the admin users API),
shaped as GoTrue answers it, so that unchanged supabase-js and supabase-py sign in on a
laptop or in CI. Users and sessions live in the local `auth` schema under GoTrue's names;
in production the hosted project's own Auth answers these URLs.
"""
