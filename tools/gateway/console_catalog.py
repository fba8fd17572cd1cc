"""`GET /console/projections.json`: the application's projection catalog as the console's
read-models view needs it (name, version, mode, checkpoint name, tables and columns).

Only the catalog lives in Python, so only the gateway can say it; the rows, checkpoints and
lag come from the database under the caller's token (RLS and public.console_read_models).
The catalog is the app's declaration, not data, so it is the same for every caller."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from projections.application import Application
from projections.metadata import Projection
from tools.gateway.errors import json_response


def describe(projection: Projection) -> dict[str, Any]:
    """One projection as plain data: what the view lists, and which tables it reads."""
    return {
        "name": projection.name,
        "version": projection.version,
        "mode": projection.mode,
        "consumer": projection.consumer,
        "readers": list(projection.readers),
        "realtime": projection.realtime,
        "schema": projection.schema_name,
        "tables": [{"name": table.name, "primary_key": list(table.primary_key),
                    "columns": [{"name": column.name, "type": column.type,
                                 "nullable": column.nullable} for column in table.columns]}
                   for table in projection.tables],
    }


class CatalogRoute:
    """The aiohttp handler, holding the application the gateway was started with (None:
    no application is configured, and the route says so)."""

    def __init__(self, application: Application | None) -> None:
        self._application = application

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._application is None:
            return json_response({"code": "no_application",
                                  "message": "the gateway runs without an application: set "
                                             "[tool.intent] app in pyproject.toml or "
                                             "INTENT_APP, then restart it"}, status=503)
        return json_response({"application": self._application.name,
                              "projections": [describe(p) for p in self._application.catalog]})
