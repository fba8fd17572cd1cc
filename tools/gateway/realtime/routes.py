"""`/realtime/v1`: the websocket endpoint, the HTTP broadcast API, and the module that
mounts them and runs the change feed while the app runs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tools.gateway.auth import AuthError, authenticate
from tools.gateway.errors import json_response
from tools.gateway.limits import InputError, loads_json, read_body, text_problem
from tools.gateway.realtime.connection import Connection
from tools.gateway.realtime.dispatch import MAX_PAYLOAD_BYTES, receive
from tools.gateway.realtime.frames import FrameError, version_of
from tools.gateway.realtime.service import RealtimeService
from tools.gateway.shared import GATEWAY, ROLE, log_event

# Frames above this end the socket (aiohttp closes it with 1009 before we see them).
MAX_FRAME_BYTES = 8 * MAX_PAYLOAD_BYTES
# A socket that sends nothing (not even a heartbeat, every 25 s) for this long is closed,
# as Phoenix does.
IDLE_SECONDS = float(os.environ.get("INTENT_REALTIME_IDLE_SECONDS", "60"))
ROUTE = "/realtime/v1/websocket"

SERVICE = web.AppKey("realtime", RealtimeService)


async def websocket(request: web.Request) -> web.StreamResponse:
    """The upgrade: the apikey must verify (401 JSON otherwise), then the socket's loop."""
    service = request.app[SERVICE]
    try:
        vsn = version_of(request.query.get("vsn"))
    except FrameError as exc:
        return json_response({"error": str(exc)}, status=400)
    try:
        caller = authenticate(request.headers, require=True,
                              query_api_key=request.query.get("apikey"))
    except AuthError as exc:
        reason = "No apikey was given" if exc.missing else exc.reason
        return json_response({"error": reason}, status=401)
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_FRAME_BYTES, compress=False,
                               autoping=True)
    if not ws.can_prepare(request).ok:
        return json_response({"error": "expected a websocket upgrade"}, status=400)
    await ws.prepare(request)
    connection = Connection(service, ws, vsn, caller, request)
    service.connections.add(connection)
    request[ROLE] = caller.role
    log_event("realtime_open", connection=connection.id, vsn=vsn, role=caller.role,
              peer=request.remote)
    try:
        while not connection.dropped:
            try:
                frame = await ws.receive(timeout=IDLE_SECONDS)
            except TimeoutError:
                await connection.close(WSCloseCode.OK, "heartbeat timeout", seconds=5)
                break
            if frame.type in {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED}:
                break
            if frame.type in {WSMsgType.TEXT, WSMsgType.BINARY}:
                try:
                    await receive(connection, frame.type, frame.data)
                except Exception as exc:  # one bad message must not end the socket
                    log_event("realtime_error", logging.ERROR, connection=connection.id,
                              error=repr(exc))
            elif frame.type == WSMsgType.ERROR:
                break
    finally:
        service.connections.discard(connection)
        await connection.finish()
        if not ws.closed and not connection.dropped:
            await connection.close(WSCloseCode.OK, "", seconds=5)
        log_event("realtime_close", connection=connection.id, code=ws.close_code,
                  dropped=connection.dropped, frames_sent=connection.frames_sent,
                  bad_frames=connection.bad_frames)
    return ws


async def http_broadcast(request: web.Request) -> web.StreamResponse:
    """`POST /realtime/v1/api/broadcast` ({messages: [...]}) and
    `.../api/broadcast/<topic>/events/<event>` (the body is the payload): 202, no body."""
    service = request.app[SERVICE]
    try:
        caller = authenticate(request.headers, require=True,
                              query_api_key=request.query.get("apikey"))
    except AuthError as exc:
        return json_response({"error": "No apikey was given" if exc.missing else exc.reason},
                             status=401)
    topic = request.match_info.get("topic")
    try:
        body = await read_body(request)
        if topic is not None:
            event = request.match_info["event"]
            payload: Any = (body if request.content_type == "application/octet-stream"
                            else loads_json(body or b"{}"))
            messages = [{"topic": topic, "event": event, "payload": payload,
                         "private": request.query.get("private") == "true"}]
        else:
            parsed = loads_json(body or b"{}")
            listed = parsed.get("messages") if isinstance(parsed, dict) else None
            if not isinstance(listed, list):
                raise InputError("expected {\"messages\": [...]}")
            messages = listed
    except InputError as exc:
        return json_response({"error": f"invalid body: {exc}"}, status=exc.status)
    for item in messages:
        if not (isinstance(item, dict) and isinstance(item.get("topic"), str)
                and isinstance(item.get("event"), str)):
            return json_response({"error": "each message needs a topic and an event"},
                                 status=400)
        # Topics reach the database (private ones) and binary frames as UTF-8 text.
        problem = text_problem(item["topic"]) or text_problem(item["event"])
        if problem is not None:
            return json_response({"error": f"a message's topic or event {problem}"},
                                 status=400)
    for item in messages:
        name = item["topic"].removeprefix("realtime:")
        private = item.get("private") is True
        if private and not await service.may_write(caller, name, item["event"],
                                                   item.get("payload"), extension="broadcast"):
            return json_response({"error": "Unauthorized: You do not have permissions to "
                                           f"write to this Channel topic: {name}"},
                                 status=401)
        service.publish(name, private, item["event"], item.get("payload", {}))
    return web.Response(status=202)


class RealtimeModule:
    """Adds /realtime/v1 to the gateway, and runs the change feed while the app runs."""

    name = "realtime"

    def install(self, app: web.Application) -> None:
        async def lifecycle(app: web.Application) -> AsyncIterator[None]:
            service = RealtimeService(app[GATEWAY])
            app[SERVICE] = service
            service.feed.start()
            try:
                yield
            finally:
                await service.feed.stop()

        async def close_sockets(app: web.Application) -> None:
            service = app[SERVICE]
            await asyncio.gather(*(
                c.close(WSCloseCode.GOING_AWAY, "the gateway is stopping", seconds=2)
                for c in list(service.connections)))

        app.cleanup_ctx.append(lifecycle)
        app.on_shutdown.append(close_sockets)
        app.router.add_get(ROUTE, websocket)
        app.router.add_post("/realtime/v1/api/broadcast", http_broadcast)
        app.router.add_post("/realtime/v1/api/broadcast/{topic}/events/{event}",
                            http_broadcast)
