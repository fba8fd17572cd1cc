import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { catalog } from "../_shared/catalog.ts";
import { createHandler, type Deps, type LogLine, type RpcResult } from "./handler.ts";

const ITEM = "6f1c2a34-1b2c-4d5e-8f90-123456789abc";
const COMMAND = "11111111-2222-4333-8444-555555555555";
const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TOKEN = "Bearer header.claims.signature";

interface Call {
  fn: string;
  args: Record<string, unknown>;
  authorization: string;
}

type Script = (fn: string, args: Record<string, unknown>) => RpcResult | Promise<RpcResult>;

function setup(script: Script) {
  const calls: Call[] = [];
  const logs: LogLine[] = [];
  let t = 1000;
  const deps: Deps = {
    catalog,
    publicUrl: "https://project.example/",
    rpcFor: (authorization) => async (fn, args) => {
      calls.push({ fn, args, authorization });
      return await script(fn, args);
    },
    now: () => t,
    sleep: (ms) => {
      t += ms;
      return Promise.resolve();
    },
    newId: () => "99999999-8888-4777-8666-555555555555",
    log: (line) => logs.push(line),
  };
  return { handler: createHandler(deps), calls, logs };
}

const ok = (data: unknown): RpcResult => ({ data, error: null, status: 200 });

function post(body: unknown, headers: Record<string, string> = {}): Request {
  return new Request("http://localhost/command", {
    method: "POST",
    headers: { authorization: TOKEN, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const command = (extra: Record<string, unknown> = {}) => ({
  type: "inventory.receive_stock",
  payload: { item_id: ITEM, quantity: 3 },
  ...extra,
});

Deno.test("OPTIONS answers the CORS preflight without touching the database", async () => {
  const { handler, calls } = setup(() => ok(null));
  const response = await handler(new Request("http://localhost/command", { method: "OPTIONS" }));
  strictEqual(response.status, 200);
  strictEqual(response.headers.get("access-control-allow-origin"), "*");
  const allowed = response.headers.get("access-control-allow-headers") ?? "";
  for (const header of ["authorization", "x-client-info", "apikey", "content-type"]) {
    strictEqual(allowed.includes(header), true, header);
  }
  strictEqual(calls.length, 0);
});

Deno.test("a command is submitted as the caller and answered 202 with a status URL", async () => {
  const { handler, calls, logs } = setup(() => ok({ command_id: COMMAND, status: "pending" }));
  const response = await handler(post(command(), { traceparent: TRACE }));
  strictEqual(response.status, 202);
  strictEqual(response.headers.get("access-control-allow-origin"), "*");
  deepStrictEqual(await response.json(), {
    commandId: COMMAND,
    status: "pending",
    statusUrl: `https://project.example/rest/v1/rpc/command_status?command_id=${COMMAND}`,
    correlationId: "99999999-8888-4777-8666-555555555555",
  });
  deepStrictEqual(calls, [{
    fn: "submit_command",
    authorization: TOKEN,
    args: {
      command_type: "inventory.receive_stock",
      payload: { item_id: ITEM, quantity: 3 },
      command_id: null,
      correlation_id: "99999999-8888-4777-8666-555555555555",
      traceparent: TRACE,
    },
  }]);
  strictEqual(logs.length, 1);
  const line = logs[0];
  strictEqual(line.method, "POST");
  strictEqual(line.status, 202);
  strictEqual(line.command_type, "inventory.receive_stock");
  strictEqual(line.command_id, COMMAND);
  strictEqual(line.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  strictEqual(typeof line.duration_ms, "number");
});

Deno.test("the caller's correlation id and command id are passed on", async () => {
  const { handler, calls } = setup(() => ok({ command_id: COMMAND, status: "pending" }));
  const correlation = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
  const response = await handler(
    post(command({ commandId: COMMAND }), { "x-correlation-id": correlation }),
  );
  strictEqual(response.headers.get("x-correlation-id"), correlation);
  strictEqual(calls[0].args.correlation_id, correlation);
  strictEqual(calls[0].args.command_id, COMMAND);
});

Deno.test("an invalid traceparent is replaced by a new trace, not refused", async () => {
  const { handler, calls, logs } = setup(() => ok({ command_id: COMMAND, status: "pending" }));
  const response = await handler(post(command(), { traceparent: "00-nonsense" }));
  strictEqual(response.status, 202);
  const sent = String(calls[0].args.traceparent);
  strictEqual(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/.test(sent), true, sent); // sampled
  strictEqual(logs[0].traceparent_dropped, true);
});

Deno.test("with wait, the answer is the outcome and the events it appended", async () => {
  const statuses = ["dispatched", "processed"];
  const result = { events: ["e-2", "e-3"], event_types: ["a", "b"], version: 3 };
  const { handler, calls } = setup((fn, args) => {
    if (fn === "submit_command") return ok({ command_id: COMMAND, status: "pending" });
    if (fn === "command_status") {
      return ok({ command_id: args.command_id, status: statuses.shift(), result, error: null });
    }
    return ok({
      events: [
        { event_id: "e-2", version: 2 },
        { event_id: "e-3", version: 3 },
      ],
    });
  });
  const response = await handler(post(command({ wait: 5 })));
  strictEqual(response.status, 200);
  const body = await response.json();
  strictEqual(body.status, "processed");
  deepStrictEqual(body.result, result);
  strictEqual(body.error, null);
  deepStrictEqual(body.events.map((e: { event_id: string }) => e.event_id), ["e-2", "e-3"]);
  deepStrictEqual(calls.map((c) => c.fn), [
    "submit_command",
    "command_status",
    "command_status",
    "read_stream",
  ]);
  deepStrictEqual(calls[3].args, {
    aggregate_type: "inventory.item",
    aggregate_id: ITEM,
    from_version: 2,
    max_count: 2,
  });
});

Deno.test("with wait, a rejection is answered 200 with its error and no events", async () => {
  const error = { code: "item_not_registered", reason: "register the item first", details: {} };
  const { handler } = setup((fn) =>
    fn === "submit_command"
      ? ok({ command_id: COMMAND, status: "pending" })
      : ok({ command_id: COMMAND, status: "rejected", result: null, error })
  );
  const response = await handler(post(command({ wait: true })));
  strictEqual(response.status, 200);
  const body = await response.json();
  strictEqual(body.status, "rejected");
  deepStrictEqual(body.error, error);
  deepStrictEqual(body.events, []);
});

Deno.test("when the wait runs out, the answer is 202 with the last status", async () => {
  const { handler, calls } = setup((fn) =>
    fn === "submit_command"
      ? ok({ command_id: COMMAND, status: "pending" })
      : ok({ command_id: COMMAND, status: "dispatched" })
  );
  const response = await handler(post(command({ wait: 1 })));
  strictEqual(response.status, 202);
  strictEqual((await response.json()).status, "dispatched");
  const polls = calls.filter((c) => c.fn === "command_status").length;
  strictEqual(polls > 1 && polls < 15, true, `${polls} polls`);
});

Deno.test("ingress refusals come back with their status and stable code", async () => {
  const { handler, logs } = setup(() => ({
    data: null,
    status: 403,
    error: {
      code: "PT403",
      hint: "forbidden",
      message: "Role anon may not send x.",
      details: null,
    },
  }));
  const response = await handler(post(command()));
  strictEqual(response.status, 403);
  deepStrictEqual(await response.json(), {
    error: { code: "forbidden", message: "Role anon may not send x." },
  });
  strictEqual(logs[0].error_code, "forbidden");
  strictEqual(logs[0].level, "warn");
});

Deno.test("a network failure or an unexpected answer is a 502, logged as an error", async () => {
  const unreachable = setup(() => {
    throw new TypeError("fetch failed");
  });
  const r1 = await unreachable.handler(post(command()));
  strictEqual(r1.status, 502);
  strictEqual((await r1.json()).error.code, "upstream_unavailable");

  const broken = setup(() => ok("not an object"));
  const r2 = await broken.handler(post(command()));
  strictEqual(r2.status, 502);
  strictEqual((await r2.json()).error.code, "upstream_error");
  strictEqual(broken.logs[0].level, "error");
});

Deno.test("a failure of the function itself is a 500 whose cause is only in the log", async () => {
  const logs: LogLine[] = [];
  const failing = createHandler({
    catalog,
    publicUrl: "",
    rpcFor: () => {
      throw new RangeError("secret internals");
    },
    now: () => 0,
    sleep: () => Promise.resolve(),
    newId: () => COMMAND,
    log: (line) => logs.push(line),
  });
  const response = await failing(post(command()));
  strictEqual(response.status, 500);
  const body = await response.json();
  strictEqual(body.error.code, "internal_error");
  strictEqual(JSON.stringify(body).includes("secret"), false);
  strictEqual(logs[0].exception, "RangeError: secret internals");
});

Deno.test("requests are refused before the database when they are malformed", async () => {
  const { handler, calls } = setup(() => ok(null));
  const cases: Array<[Request, number, string]> = [
    [new Request("http://localhost/command", { method: "GET" }), 405, "method_not_allowed"],
    [post(command(), { authorization: "" }), 401, "missing_authorization"],
    [post(command(), { "content-type": "text/plain" }), 415, "unsupported_media_type"],
    [post("{not json"), 400, "malformed_json"],
    [post(command({ type: "nope.nope" })), 400, "unknown_command_type"],
    [post(command({ payload: { item_id: ITEM, quantity: -1 } })), 400, "invalid_payload"],
    [post(command({ wait: 11 })), 400, "invalid_envelope"],
    [post(command({ commandId: "x" })), 400, "invalid_envelope"],
    [post(command(), { "x-correlation-id": "x" }), 400, "invalid_correlation_id"],
    [
      post(command({ aggregateId: "0b1c2a34-1b2c-4d5e-8f90-123456789abc" })),
      400,
      "aggregate_id_mismatch",
    ],
    [post(" ".repeat(catalog.maxPayloadBytes * 4 + 1)), 413, "payload_too_large"],
  ];
  for (const [request, status, code] of cases) {
    const response = await handler(request);
    strictEqual(response.status, status, code);
    strictEqual((await response.json()).error.code, code);
    strictEqual(response.headers.get("access-control-allow-origin"), "*");
  }
  strictEqual(calls.length, 0);
});

Deno.test("a declared Content-Length over the limit is refused without reading", async () => {
  const { handler } = setup(() => ok(null));
  const request = new Request("http://localhost/command", {
    method: "POST",
    headers: {
      authorization: TOKEN,
      "content-type": "application/json",
      "content-length": String(catalog.maxPayloadBytes * 4 + 1),
    },
    body: "{}",
  });
  strictEqual((await handler(request)).status, 413);
});

Deno.test("a body that is not UTF-8 is malformed", async () => {
  const { handler } = setup(() => ok(null));
  const request = new Request("http://localhost/command", {
    method: "POST",
    headers: { authorization: TOKEN, "content-type": "application/json" },
    body: new Uint8Array([0x7b, 0xff, 0x7d]),
  });
  const response = await handler(request);
  strictEqual(response.status, 400);
  strictEqual((await response.json()).error.code, "malformed_json");
});

Deno.test("with an ingress span the command carries the span's context, not the caller's", async () => {
  const calls: Call[] = [];
  const logs: LogLine[] = [];
  const span = {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    parentId: "a1b2c3d4e5f60718",
    flags: "01",
  };
  const traced = createHandler({
    ...setupDeps(calls, logs),
    ingressSpan: (run) => run(span),
  });
  const response = await traced(post(command(), { traceparent: TRACE }));
  strictEqual(response.status, 202);
  strictEqual(calls[0].args.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-a1b2c3d4e5f60718-01");
  strictEqual(logs[0].trace_id, span.traceId);
});

Deno.test("an ingress span that is off (null) leaves the caller's traceparent as it came", async () => {
  const calls: Call[] = [];
  const logs: LogLine[] = [];
  const traced = createHandler({ ...setupDeps(calls, logs), ingressSpan: (run) => run(null) });
  await traced(post(command(), { traceparent: TRACE }));
  strictEqual(calls[0].args.traceparent, TRACE);
});

function setupDeps(calls: Call[], logs: LogLine[]): Deps {
  return {
    catalog,
    publicUrl: "https://project.example/",
    rpcFor: (authorization) => (fn, args) => {
      calls.push({ fn, args, authorization });
      return Promise.resolve(ok({ command_id: COMMAND, status: "pending" }));
    },
    now: () => 0,
    sleep: () => Promise.resolve(),
    newId: () => "99999999-8888-4777-8666-555555555555",
    log: (line) => logs.push(line),
  };
}
