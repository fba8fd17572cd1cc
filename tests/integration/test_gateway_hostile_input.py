"""No hostile input gets a 5xx from the local gateway, on any path it serves (issue 14.4).

A tester found 500s (deep JSON, unicode digits in limit/offset) and 503s (NUL bytes that
psycopg cannot send) against the running stack. Each case has its own test below: it must
be a 4xx in the path's own error shape (PostgREST's on /rest/v1, the edge runtime's on
/functions/v1, `{"error"}` on the broadcast API), and the next valid request on the same
gateway must be served. Then a property test per path family throws generated hostile
input (NUL, lone surrogates, unicode digits, bad %-escapes, deep nesting, huge numbers,
wrong JSON types) at it and asserts the same: below 500, and a well-formed error when 4xx.

One gateway process (REST, Realtime and the fixture functions) serves the whole module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.support.gateway import fixture_functions_gateway
from tests.support.http import auth
from tests.support.tenants import any_user
from tools.gateway.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH
from tools.gateway.realtime.frames import V1, V2, FrameError, decode_text
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key

pytestmark = pytest.mark.integration

PROBE = "hostile_input_probe"
TABLE = "stock_levels"
# Generated examples per path family: enough variety to find a crash, quick enough that
# the whole module runs in well under a minute.
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
POSTGREST_KEYS = {"code", "message", "details", "hint"}


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with fixture_functions_gateway(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def probe(database_url: str) -> Iterator[None]:
    """A function taking jsonb, integer and text arguments, each optional (dropped after)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"""
        create function public.{PROBE}(doc jsonb default null, n integer default null,
                                       label text default null) returns jsonb
        language sql stable as $$
          select jsonb_build_object('doc', doc, 'n', n, 'label', label)
        $$""")
        conn.execute(f"grant execute on function public.{PROBE} to anon, authenticated, "
                     "service_role")
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"drop function if exists public.{PROBE}")


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client for the module (the property tests may only use module fixtures); a new
    connection per request, as the server may close one after refusing its body."""
    async with aiohttp.ClientSession(auto_decompress=False,
                                     connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


@pytest.fixture(scope="module")
def user() -> dict[str, str]:
    """Headers of a signed-in user of a tenant of its own (it sees no rows: 200 `[]`)."""
    return auth(any_user())


# -- requests and answers -----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str

    def json(self) -> Any:
        """The body as strict JSON: NaN or Infinity would not be well-formed."""
        def refuse(name: str) -> Any:
            raise AssertionError(f"{name} in the answer is not JSON: {self}")
        return json.loads(self.text, parse_constant=refuse)


async def send(http: aiohttp.ClientSession, method: str, url: str, *,
               headers: dict[str, str] | None = None, data: bytes | str | None = None
               ) -> Answer:
    """`url` is sent exactly as given (already percent-encoded, bad escapes and all)."""
    async with http.request(method, URL(url, encoded=True), headers=headers, data=data,
                            allow_redirects=False) as response:
        raw = await response.read()
    return Answer(response.status, response.headers.get("Content-Type", ""),
                  raw.decode("utf-8", "replace"))


async def send_raw(gateway: RunningGateway, head: bytes, body: bytes = b"") -> Answer:
    """A request written byte by byte: for bytes no HTTP client would send."""
    url = URL(gateway.url)
    assert url.host is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head + b"Host: local\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode("latin-1").split(": ", 1)
                   for line in header_block.split(b"\r\n") if b": " in line)
    return Answer(int(status_line.split()[1]),
                  {k.lower(): v for k, v in headers.items()}.get("content-type", ""),
                  payload.decode("utf-8", "replace"))


def _well_formed(answer: Answer) -> dict[str, Any]:
    assert 400 <= answer.status < 500, answer
    assert answer.content_type.startswith("application/json"), answer
    assert "Traceback" not in answer.text, answer
    body = answer.json()
    assert isinstance(body, dict), answer
    return body


def assert_postgrest_error(answer: Answer, *, code: str | None = None) -> None:
    """A 4xx in PostgREST's shape: exactly code, message, details, hint."""
    body = _well_formed(answer)
    assert set(body) == POSTGREST_KEYS, answer
    assert isinstance(body["code"], str), answer
    assert body["code"], answer
    assert isinstance(body["message"], str), answer
    assert body["message"], answer
    assert all(body[k] is None or isinstance(body[k], str) for k in ("details", "hint"))
    assert "internal error" not in body["message"], answer
    if code is not None:
        assert body["code"] == code, answer


def assert_functions_error(answer: Answer) -> None:
    """A 4xx as the edge runtime gives it: {code, message}, or {msg} for a JWT refusal."""
    body = _well_formed(answer)
    if set(body) == {"msg"}:
        assert isinstance(body["msg"], str), answer
        assert body["msg"], answer
    else:
        assert set(body) == {"code", "message"}, answer
        assert all(isinstance(body[k], str) and body[k] for k in body), answer


def assert_broadcast_error(answer: Answer) -> None:
    """A 4xx of the broadcast API: one `error` saying why."""
    body = _well_formed(answer)
    assert set(body) == {"error"}, answer
    assert isinstance(body["error"], str), answer
    assert body["error"], answer


async def assert_served(http: aiohttp.ClientSession, gateway: RunningGateway,
                        user: dict[str, str]) -> None:
    """Valid requests of every path family still get their 2xx."""
    read = await send(http, "GET", f"{gateway.url}/rest/v1/{TABLE}?select=sku&limit=1",
                      headers=user)
    assert (read.status, read.json()) == (200, []), read
    called = await send(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}",
                        headers={**user, "Content-Type": "application/json"},
                        data=json.dumps({"doc": [1], "n": 2, "label": "ok"}))
    assert (called.status, called.json()) == (200, {"doc": [1], "n": 2, "label": "ok"})
    got = await send(http, "GET", f"{gateway.url}/rest/v1/rpc/{PROBE}?label=ok", headers=user)
    assert (got.status, got.json()["label"]) == (200, "ok"), got
    echoed = await send(http, "GET", f"{gateway.url}/functions/v1/echo-public")
    assert (echoed.status, echoed.json()["method"]) == (200, "GET"), echoed
    sent = await send(http, "POST", f"{gateway.url}/realtime/v1/api/broadcast",
                      headers={"apikey": anon_key(), "Content-Type": "application/json"},
                      data=json.dumps({"messages": [{"topic": "hostile", "event": "e",
                                                     "payload": {"ok": True}}]}))
    assert sent.status == 202, sent


def within_request_line(url: str) -> str:
    """Generated URLs stay under aiohttp's request-line limit (8190 bytes): a longer one is
    refused by its HTTP parser in plain text before the gateway sees it, as the proxy in
    front of hosted Supabase refuses it (414), so it is not the gateway's answer to test."""
    assume(len(url) < 8000)
    return url


def nested(depth: int) -> str:
    """JSON arrays nested `depth` deep around a number."""
    return "[" * depth + "1" + "]" * depth


# -- the cases the tester found -----------------------------------------------------------


async def test_an_rpc_body_nested_2000_deep_is_postgrests_400_not_a_500(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    answer = await send(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}",
                        headers={**user, "Content-Type": "application/json"},
                        data=f'{{"doc": {nested(2000)}}}')
    assert_postgrest_error(answer, code="PGRST102")
    assert answer.status == 400
    await assert_served(http, gateway, user)


async def test_json_nested_to_the_limit_is_served_and_one_level_deeper_is_refused(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    url = f"{gateway.url}/rest/v1/rpc/{PROBE}"
    headers = {**user, "Content-Type": "application/json"}
    # The arguments' object is one level, so `doc` may nest one less than the limit.
    deepest = await send(http, "POST", url, headers=headers,
                         data=f'{{"doc": {nested(MAX_JSON_DEPTH - 1)}}}')
    assert deepest.status == 200, deepest
    assert json.loads(deepest.text)["doc"] == json.loads(nested(MAX_JSON_DEPTH - 1))
    too_deep = await send(http, "POST", url, headers=headers,
                          data=f'{{"doc": {nested(MAX_JSON_DEPTH)}}}')
    assert_postgrest_error(too_deep, code="PGRST102")
    assert str(MAX_JSON_DEPTH) in (json.loads(too_deep.text)["details"] or "")


async def test_a_jsonb_get_argument_nested_1100_deep_is_400_not_a_500(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    answer = await send(http, "GET", f"{gateway.url}/rest/v1/rpc/{PROBE}?doc="
                        + quote(nested(1100)), headers=user)
    assert_postgrest_error(answer, code="22P02")
    assert answer.status == 400
    await assert_served(http, gateway, user)


async def test_a_broadcast_body_nested_100000_deep_is_a_json_400_not_a_500(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    headers = {"apikey": anon_key(), "Content-Type": "application/json"}
    deep = nested(100_000)
    in_a_message = '{"messages": [{"topic": "t", "event": "e", "payload": ' + deep + "}]}"
    for url, body in ((f"{gateway.url}/realtime/v1/api/broadcast", deep),
                      (f"{gateway.url}/realtime/v1/api/broadcast", in_a_message),
                      (f"{gateway.url}/realtime/v1/api/broadcast/t/events/e", deep)):
        answer = await send(http, "POST", url, headers=headers, data=body)
        assert_broadcast_error(answer)
        assert answer.status == 400
    await assert_served(http, gateway, user)


@pytest.mark.parametrize("parameter", ["limit=%C2%B2", "offset=%C2%B3", "limit=%D9%A3",
                                       "offset=" + "9" * 5000, "limit=9223372036854775808"])
async def test_unicode_digits_and_huge_numbers_in_limit_or_offset_are_postgrests_400(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    parameter: str,
) -> None:
    answer = await send(http, "GET", f"{gateway.url}/rest/v1/{TABLE}?{parameter}",
                        headers=user)
    assert_postgrest_error(answer, code="PGRST100")
    assert answer.status == 400
    await assert_served(http, gateway, user)


@pytest.mark.parametrize("query", ["sku=eq.a%00b", "sku=in.(a,%00)", "item_id=eq.%00",
                                   "select=sku&name=neq.%00"])
async def test_a_nul_byte_in_a_filter_value_is_postgrests_400_not_a_503(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    query: str,
) -> None:
    answer = await send(http, "GET", f"{gateway.url}/rest/v1/{TABLE}?{query}", headers=user)
    assert_postgrest_error(answer, code="PGRST100")
    assert answer.status == 400
    await assert_served(http, gateway, user)


@pytest.mark.parametrize("path", ["/rest/v1/stock%00levels", "/rest/v1/%00",
                                  f"/rest/v1/rpc/{PROBE}%00", "/rest/v1/rpc/%00"])
async def test_a_nul_byte_in_a_table_or_function_name_is_postgrests_400_not_a_503(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    path: str,
) -> None:
    for method in ("GET", "POST"):
        answer = await send(http, method, gateway.url + path,
                            headers={**user, "Content-Type": "application/json"}, data="{}")
        assert_postgrest_error(answer, code="PGRST100")
        assert answer.status == 400
    await assert_served(http, gateway, user)


# -- more of the same kind, found while fixing those -------------------------------------


@pytest.mark.parametrize("path", ["/rest/v1/stock_levels", "/functions/v1/echo",
                                  "/realtime/v1/api/broadcast"])
async def test_a_token_that_is_not_utf8_is_a_401_in_the_paths_shape_not_a_500(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    path: str,
) -> None:
    method = b"POST" if "broadcast" in path else b"GET"
    answer = await send_raw(gateway, method + b" " + path.encode() + b" HTTP/1.1\r\n"
                            b"apikey: " + anon_key().encode() + b"\r\n"
                            b"Authorization: Bearer \xff\xfe\xed\xa0\x80\r\n", b"{}")
    assert answer.status == 401, answer
    if path.startswith("/rest"):
        assert_postgrest_error(answer, code="PGRST301")
    elif path.startswith("/functions"):
        assert_functions_error(answer)
    else:
        assert_broadcast_error(answer)
    await assert_served(http, gateway, user)


async def test_a_body_over_the_limit_is_a_413_in_each_paths_shape(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    too_big = b" " * (MAX_BODY_BYTES + 1)
    headers = {**user, "Content-Type": "application/json"}
    rpc = await send(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}", headers=headers,
                     data=too_big)
    assert_postgrest_error(rpc, code="PGRST102")
    function = await send(http, "POST", f"{gateway.url}/functions/v1/echo-public",
                          headers=headers, data=too_big)
    assert_functions_error(function)
    broadcast = await send(http, "POST", f"{gateway.url}/realtime/v1/api/broadcast",
                           headers=headers, data=too_big)
    assert_broadcast_error(broadcast)
    assert (rpc.status, function.status, broadcast.status) == (413, 413, 413)
    await assert_served(http, gateway, user)


async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    headers = {**user, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    rpc = await send(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}", headers=headers,
                     data=b"not gzip")
    assert_postgrest_error(rpc, code="PGRST102")
    function = await send(http, "POST", f"{gateway.url}/functions/v1/echo-public",
                          headers=headers, data=b"not gzip")
    assert_functions_error(function)
    broadcast = await send(http, "POST", f"{gateway.url}/realtime/v1/api/broadcast",
                           headers=headers, data=b"not gzip")
    assert_broadcast_error(broadcast)
    assert (rpc.status, function.status, broadcast.status) == (400, 400, 400)
    await assert_served(http, gateway, user)


@pytest.mark.parametrize("message", [
    '{"topic": "t", "event": "e", "payload": NaN}',
    '{"topic": "t", "event": "e", "payload": {"big": 1e999}}',
    '{"topic": "t\\u0000", "event": "e", "private": true}',
    '{"topic": "\\ud800", "event": "e", "private": true}',
    '{"topic": "t", "event": "\\udfff"}',
], ids=["nan", "overflowing-float", "nul-topic", "surrogate-topic", "surrogate-event"])
async def test_broadcast_messages_that_are_not_json_or_not_text_are_a_400(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    message: str,
) -> None:
    answer = await send(http, "POST", f"{gateway.url}/realtime/v1/api/broadcast",
                        headers={"apikey": anon_key(), "Content-Type": "application/json"},
                        data=f'{{"messages": [{message}]}}')
    assert_broadcast_error(answer)
    assert answer.status == 400
    await assert_served(http, gateway, user)


@pytest.mark.parametrize("vsn", [V1, V2])
def test_websocket_frames_nested_too_deep_or_with_a_nul_topic_are_frame_errors(
    vsn: str
) -> None:
    payload = nested(100_000)
    frame = (f'{{"topic": "realtime:t", "event": "broadcast", "payload": {payload}}}'
             if vsn == V1 else f'[null, "1", "realtime:t", "broadcast", {payload}]')
    with pytest.raises(FrameError, match="deeper"):
        decode_text(frame, vsn)
    nul = (json.dumps({"topic": "realtime:\x00", "event": "phx_join", "payload": {}})
           if vsn == V1 else json.dumps([None, "1", "realtime:\x00", "phx_join", {}]))
    with pytest.raises(FrameError, match="NUL"):
        decode_text(nul, vsn)


# -- generated hostile input, per path family ---------------------------------------------

# Percent-escapes sent as they are: malformed, overlong, a lone surrogate, a NUL.
RAW_ESCAPES = ["%", "%Z", "%ZZ", "%0", "%E2%82", "%ED%A0%80", "%C0%AF", "%FF", "%00",
               "%2500", "%%", "%u0000"]
# Unicode digits among them: superscripts, Arabic-Indic, fullwidth, mathematical bold.
HOSTILE_TEXT = ["\x00", "a\x00b", "\ud800", "\udfff", "\ud83d", "²", "³", "٣", "\uff11",
                "\U0001d7d7", str(2**70), str(-(2**70)), "9" * 400, "1e999", "NaN",
                "-Infinity", "0x10", " 1", "-0", "", "(", ")", '"', "\\", ",", ".", "..",
                "*", "::", "->", "!", "\u202e", "\ufeff", "\r\n", "\t", "{", "[", "}", "é"]
# One hostile token alone half the time (a lone `²` or NUL is what breaks things), else a
# mix of them with arbitrary text.
hostile_strings = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.lists(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=6)), max_size=4
             ).map("".join))


def _encoded(text: str) -> str:
    """Percent-encoded as UTF-8; a lone surrogate becomes the bytes no decoder accepts."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Text as it appears in a URL: percent-encoded hostile strings and raw bad escapes.
url_text = st.one_of(
    st.sampled_from(RAW_ESCAPES), hostile_strings.map(_encoded),
    st.lists(st.one_of(st.sampled_from(RAW_ESCAPES), hostile_strings.map(_encoded)),
             max_size=4).map("".join))
deep_text = st.builds(
    lambda depth, kind: ("[" * depth + "]" * depth) if kind else
    ('{"a":' * depth + "1" + "}" * depth),
    st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=5000), st.booleans())
# Deep JSON that fits in a URL: arrays up to the 1,100 levels the tester sent.
deep_url_text = st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=1100).map(
    lambda depth: quote(nested(depth)))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**70, -(2**70), 10**300, 0.1, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN, Infinity: not JSON
    hostile_strings)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(hostile_strings, children, max_size=3),
    max_leaves=12)


def _dumps(value: Any) -> str:
    """JSON text as Python writes it: NaN and Infinity bare, lone surrogates as escapes."""
    return json.dumps(value)


hostile_bodies = st.one_of(
    json_values.map(_dumps), deep_text, st.binary(max_size=64),
    st.sampled_from(["", "{", '{"a":', "null", "[]", '"x"', "1" * 5000, "\ufeff{}",
                     '{"a": NaN}', '{"a": 1e400}', '{"\\u0000": 1}']))
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form"
                                 "-urlencoded", "application/octet-stream",
                                 "application/json; charset=latin-1", "", "*/*; q=x"])
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


# Query parameters of a table read: page, shape, filters on real columns, the unserved.
table_parameters = st.one_of(
    st.tuples(st.sampled_from(["limit", "offset"]), url_text),
    st.tuples(st.sampled_from(["select", "order"]), url_text),
    st.tuples(st.sampled_from(["sku", "available", "item_id", "name", '"sku"']),
              st.tuples(st.sampled_from(["eq.", "neq.", "gt.", "lte.", "in.(", "in.", "is.",
                                         "like.", "not.eq.", ""]), url_text).map("".join)),
    st.tuples(st.sampled_from(["or", "and", "not.or", "sku.order", "columns"]), url_text),
    st.tuples(url_text, url_text))


@FUZZ
@given(
    table=st.one_of(st.just(TABLE), url_text),
    params=st.lists(table_parameters, max_size=4),
    accept=st.one_of(st.none(), st.sampled_from(
        ["application/vnd.pgrst.object+json", "text/csv", "*/*"]), header_text),
    prefer=st.one_of(st.none(), st.sampled_from(["count=exact", "count=planned"]),
                     header_text),
)
async def test_table_reads_answer_hostile_queries_below_500_in_postgrests_shape(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    table: str, params: list[tuple[str, str]], accept: str | None, prefer: str | None,
) -> None:
    headers = dict(user)
    if accept is not None:
        headers["Accept"] = accept
    if prefer is not None:
        headers["Prefer"] = prefer
    query = "&".join(f"{key}={value}" for key, value in params)
    for method in ("GET", "HEAD"):
        answer = await send(http, method, within_request_line(
            f"{gateway.url}/rest/v1/{table}?{query}"), headers=headers)
        assert answer.status < 500, answer
        if answer.status >= 400 and method == "GET":
            assert_postgrest_error(answer)


rpc_names = st.one_of(st.sampled_from([PROBE, "command_status", "read_stream"]), url_text)
rpc_argument_values = st.one_of(url_text, deep_url_text,
                                json_values.map(_dumps).map(_encoded))


@FUZZ
@given(
    function=rpc_names,
    arguments=st.lists(st.tuples(
        st.one_of(st.sampled_from(["doc", "n", "label", "command_id", "select", "apikey"]),
                  url_text), rpc_argument_values), max_size=3),
)
async def test_rpc_gets_answer_hostile_arguments_below_500_in_postgrests_shape(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    function: str, arguments: list[tuple[str, str]],
) -> None:
    query = "&".join(f"{key}={value}" for key, value in arguments)
    answer = await send(http, "GET", within_request_line(
        f"{gateway.url}/rest/v1/rpc/{function}?{query}"), headers=user)
    assert answer.status < 500, answer
    if answer.status >= 400:
        assert_postgrest_error(answer)


@FUZZ
@given(
    function=rpc_names,
    body=st.one_of(
        hostile_bodies,
        st.fixed_dictionaries({}, optional={"doc": json_values, "n": json_values,
                                            "label": json_values}).map(_dumps),
        st.tuples(st.sampled_from(["doc", "n", "label"]), deep_text).map(
            lambda pair: f'{{"{pair[0]}": {pair[1]}}}')),
    content_type=content_types,
)
async def test_rpc_posts_answer_hostile_bodies_below_500_in_postgrests_shape(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    function: str, body: str | bytes, content_type: str,
) -> None:
    answer = await send(http, "POST", f"{gateway.url}/rest/v1/rpc/{function}",
                        headers={**user, "Content-Type": content_type},
                        data=body.encode("utf-8", "surrogatepass")
                        if isinstance(body, str) else body)
    assert answer.status < 500, answer
    if answer.status >= 400:
        assert_postgrest_error(answer)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    # Not `crash`: that fixture exits on purpose; its 500 is the edge runtime's answer.
    slug=st.one_of(st.sampled_from(["echo-public", "echo"]),
                   url_text.filter(lambda s: "crash" not in s)),
    tail=st.one_of(st.just(""), url_text.map(lambda s: "/" + s)),
    # `status` would be read by the echo fixture itself; the keys are prefixed.
    query=st.lists(st.tuples(url_text, url_text), max_size=3),
    authorization=st.one_of(st.none(), st.just("user"), header_text),
    body=hostile_bodies,
    content_type=content_types,
)
async def test_function_invocations_answer_hostile_input_below_500_in_the_runtimes_shape(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    method: str, slug: str, tail: str, query: list[tuple[str, str]], authorization: str | None,
    body: str | bytes, content_type: str,
) -> None:
    headers = {"apikey": anon_key(), "Content-Type": content_type}
    if authorization == "user":
        headers["Authorization"] = user["Authorization"]
    elif authorization is not None:
        headers["Authorization"] = authorization
    search = "&".join(f"k{key}={value}" for key, value in query)
    url = within_request_line(f"{gateway.url}/functions/v1/{slug}{tail}?{search}")
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    answer = await send(http, method, url, headers=headers,
                        data=None if method == "GET" else data)
    assert answer.status < 500, answer
    if answer.status >= 400:
        assert_functions_error(answer)


broadcast_messages = st.lists(st.one_of(
    st.fixed_dictionaries(
        {"topic": st.one_of(hostile_strings, json_values),
         "event": st.one_of(hostile_strings, json_values)},
        optional={"payload": json_values, "private": st.one_of(st.booleans(), json_values)}),
    json_values), max_size=3)


@FUZZ
@given(
    body=st.one_of(hostile_bodies, broadcast_messages.map(lambda m: _dumps({"messages": m}))),
    topic=st.one_of(st.none(), url_text),
    event=url_text,
    private=st.sampled_from(["", "?private=true", "?private=false", "?private=%00"]),
    content_type=content_types,
)
async def test_the_broadcast_api_answers_hostile_messages_below_500_with_a_json_error(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str],
    body: str | bytes, topic: str | None, event: str, private: str, content_type: str,
) -> None:
    path = ("/realtime/v1/api/broadcast" if topic is None
            else f"/realtime/v1/api/broadcast/{topic}/events/{event}")
    answer = await send(http, "POST", within_request_line(f"{gateway.url}{path}{private}"),
                        headers={"apikey": anon_key(), "Content-Type": content_type},
                        data=body.encode("utf-8", "surrogatepass")
                        if isinstance(body, str) else body)
    assert answer.status < 500, answer
    if answer.status >= 400 and answer.status != 404:
        assert_broadcast_error(answer)
    elif answer.status == 404:  # a topic or event with `/` in it: no such route
        assert answer.json()["message"].endswith("is not served by the local gateway")


async def test_the_gateway_serves_valid_requests_after_the_generated_ones(
    gateway: RunningGateway, probe: None, http: aiohttp.ClientSession, user: dict[str, str]
) -> None:
    await assert_served(http, gateway, user)
    unhandled = [e for e in gateway.log_events() if e.get("event") == "unhandled_error"]
    assert unhandled == []
