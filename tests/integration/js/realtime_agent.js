// A supabase-js Realtime client driven by the Python tests, so that the same scenarios run
// against both official clients. Usage: node realtime_agent.js <gateway url> <anon key>
// Commands come on stdin, one JSON object per line ({id, op, ...}); everything the client
// sees goes to stdout, one JSON object per line: {ev: "done", id, result} when a command
// finished, and {ev: "status" | "broadcast" | "presence" | "change" | "system", channel, ...}
// for what the server sent.
'use strict';

const readline = require('node:readline');
const { createClient } = require('@supabase/supabase-js');
const ws = require('ws');

const [url, anonKey, userToken] = process.argv.slice(2);
let token = userToken || anonKey;
const supabase = createClient(url, anonKey, {
  accessToken: async () => token,
  realtime: { transport: ws, heartbeatIntervalMs: 5000 },
});
const channels = new Map();

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function subscribe(cmd) {
  const config = cmd.config || {};
  const channel = supabase.channel(cmd.topic, { config });
  const name = cmd.channel;
  channel.on('broadcast', { event: '*' }, (message) =>
    emit({ ev: 'broadcast', channel: name, event: message.event, payload: message.payload,
           meta: message.meta || null }));
  if (cmd.presence) {
    channel.on('presence', { event: 'join' }, ({ key, newPresences }) =>
      emit({ ev: 'presence', channel: name, kind: 'join', key,
             metas: newPresences.map((p) => { const { presence_ref, ...rest } = p; return rest; }) }));
    channel.on('presence', { event: 'leave' }, ({ key, leftPresences }) =>
      emit({ ev: 'presence', channel: name, kind: 'leave', key,
             metas: leftPresences.map((p) => { const { presence_ref, ...rest } = p; return rest; }) }));
  }
  for (const binding of cmd.changes || []) {
    channel.on('postgres_changes', binding, (payload) =>
      emit({ ev: 'change', channel: name, type: payload.eventType, table: payload.table,
             schema: payload.schema, record: payload.new, old_record: payload.old,
             commit_timestamp: payload.commit_timestamp, errors: payload.errors }));
  }
  channel.on('system', {}, (payload) => emit({ ev: 'system', channel: name, payload }));
  channels.set(name, channel);
  return new Promise((resolve) => {
    let settled = false;
    channel.subscribe((status, error) => {
      emit({ ev: 'status', channel: name, status, error: error ? String(error.message || error) : null });
      if (!settled) {
        settled = true;
        resolve(status);
      }
    });
  });
}

async function run(cmd) {
  const channel = channels.get(cmd.channel);
  switch (cmd.op) {
    case 'subscribe':
      return subscribe(cmd);
    case 'send':
      return channel.send({ type: 'broadcast', event: cmd.event, payload: cmd.payload });
    case 'track':
      return channel.track(cmd.payload);
    case 'untrack':
      return channel.untrack();
    case 'unsubscribe':
      return channel.unsubscribe();
    case 'set_auth':
      token = cmd.token;
      await supabase.realtime.setAuth();
      return 'ok';
    case 'exit':
      await supabase.removeAllChannels();
      process.exit(0);
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  run(cmd).then(
    (result) => emit({ ev: 'done', id: cmd.id, result: result === undefined ? null : result }),
    (error) => emit({ ev: 'done', id: cmd.id, error: String(error && error.message || error) }),
  );
});
input.on('close', () => process.exit(0));
