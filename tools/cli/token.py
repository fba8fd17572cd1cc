"""`intent token`: mint a local user token for scripts and tests (apps sign in through /auth/v1)."""

from __future__ import annotations

from uuid import UUID

import click

from tools.local import keys as local_keys


@click.command("token", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tenant", "tenant_id", type=click.UUID, required=True, metavar="UUID",
              help="The tenant, written into app_metadata.tenant_id.")
@click.option("--user", "user_id", type=click.UUID, required=True, metavar="UUID",
              help="The user, written into sub.")
@click.option("--role", type=click.Choice(sorted(local_keys.ROLES)), default="authenticated",
              show_default=True, help="The database role the token asks for.")
@click.option("--expires-in", type=click.IntRange(min=1), default=3600, show_default=True,
              metavar="SECONDS", help="How long the token stays valid.")
def token(tenant_id: UUID, user_id: UUID, role: str, expires_in: int) -> None:
    """Print a JWT for a user of a tenant, signed with the local development secret.

    Use it as `Authorization: Bearer <token>` against the local gateway (`intent gateway`),
    with the anon key as `apikey`. Development only: the secret is public.
    """
    click.echo(local_keys.user_token(tenant_id, user_id, role=role, expires_in=expires_in))
