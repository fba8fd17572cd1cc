-- Realtime broadcasts off the append's critical path: a relay that follows the global feed
-- replaces the statement-level trigger of *_realtime_events.sql.
--
-- What clients see does not change: the same two private topics per event
-- (intent:tenant:<tenant> and intent:aggregate:<tenant>:<aggregate_type>:<aggregate_id>), the
-- event type as the event name, the same payload (the event as public.load_aggregate returns
-- it, plus aggregate_type, aggregate_id and `id` = the event id), the aggregate topic's row
-- id = the event id, the tenant topic's a random one, extension 'broadcast', private, and the
-- read policy intent_tenant_topics_read of *_realtime_events.sql (kept as it is).
--
-- What changes is who writes them, and when. The trigger cost every append a fifth to a third
-- of its time; now `intent relay` calls intent.relay_broadcasts() in a loop, and each call
-- moves a checkpoint in intent.checkpoints (consumer 'intent.realtime_relay') over the next
-- events of the global feed and writes their messages in one INSERT ... SELECT, in the same
-- transaction. Run it beside the pump and the worker, on hosted Supabase too (as
-- intent_worker); a second relay is harmless (it finds the checkpoint locked and does nothing).
--
-- Exactly once, in feed order:
--
--   * No skip. A call reads only events of transactions older than its snapshot's horizon
--     (transaction_id < pg_snapshot_xmin(pg_current_snapshot())), in (transaction_id,
--     position) order, as pump/store/feed.py does. Every transaction below the horizon has
--     ended, and any transaction that gets an id later gets a larger one, so nothing can
--     appear below the horizon afterwards: a page ends at a point behind which every event
--     is final and was read. The checkpoint is the last event of the page.
--   * Snapshots. In plpgsql every statement of a VOLATILE function takes a snapshot of its
--     own (READ COMMITTED). A first look without a lock returns at once when nothing waits
--     (an idle call takes no transaction id and writes nothing; it only concludes "nothing
--     yet"). Otherwise the checkpoint is read again FOR UPDATE, which gives the call a
--     transaction id of its own; pg_snapshot_xmin then counts that id too (it is never above
--     it). That only holds the horizon back to this call's own start, which is what a reader
--     wants; and the call writes no events, so its own id hides nothing. The page is read,
--     its messages written and the checkpoint moved in ONE statement, so one snapshot decides
--     both what is below the horizon and what is visible; pg_current_snapshot() is that
--     statement's snapshot. Under REPEATABLE READ the transaction's snapshot serves, which
--     is as sound (and a concurrent checkpoint move is a serialization error, retried).
--   * No duplicate. FOR UPDATE returns the newest committed checkpoint (READ COMMITTED
--     follows the row to its latest version), and messages and checkpoint commit together
--     or not at all. SKIP LOCKED makes a second relay return at once instead of queueing.
--   * Failures. Any error writing realtime.messages (hosted: realtime.messages is
--     partitioned by day and a missing partition raises; a revoked privilege; a changed
--     realtime schema) fails the call, and the checkpoint stays where it was: the relay logs
--     it, backs off and calls again; nothing is lost and the append never knew.
--   * Order. Messages are inserted in feed order (a tenant's and an aggregate's events in the
--     order of their positions within a transaction, transactions in id order), which is the
--     order Realtime reads them from the WAL. Clients still apply events by version.
--
-- The cut-over from the trigger. Under an exclusive lock on intent.events (nothing appends
-- meanwhile; open appends are waited for), every event in the table has been broadcast by the
-- trigger. The checkpoint cannot simply be the newest of them: a transaction with an older id
-- that appends after this migration (a worker's batch that had locked its commands but not
-- yet appended) sorts before that event in the feed and would be skipped. So the checkpoint
-- starts at the last event below the horizon (those are final), and the relay never writes
-- messages for a position at or below the newest position of today (intent.broadcast_cutover):
-- the events above the horizon that exist now were broadcast by the trigger; every later
-- event takes a larger position from the identity sequence (checked: it hands out values one
-- at a time, cache 1), and a later one below the horizon cannot exist.
--
-- Lag: intent.broadcast_lag() (events waiting, the age of the oldest), read by the relay's
-- gauges (intent.broadcast.lag.*) and by `intent status`.

set local lock_timeout = '10s';  -- fail rather than queue appends behind a waiting lock
-- ACCESS EXCLUSIVE rather than SHARE: DROP TRIGGER takes it anyway, and asking for it first
-- means no lock upgrade (an upgrade can deadlock with an append that read the table first).
lock table intent.events in access exclusive mode;

drop trigger if exists events_broadcast on intent.events;
drop function if exists intent.broadcast_events();

do $$
begin
  if (select s.seqcache from pg_catalog.pg_sequence s
       where s.seqrelid = pg_catalog.pg_get_serial_sequence('intent.events', 'position')
                            ::regclass) <> 1 then
    raise exception 'the identity sequence of intent.events.position caches values: the '
      'broadcast relay''s cut-over needs every later event to take a larger position (set '
      'its CACHE to 1 first)';
  end if;
end
$$;

-- The cut-over: positions up to here were broadcast by the trigger ----------------------
create table intent.broadcast_cutover (
  only_row boolean primary key default true check (only_row),
  trigger_sent_through bigint not null
);
alter table intent.broadcast_cutover enable row level security;
alter table intent.broadcast_cutover force row level security;
revoke all on intent.broadcast_cutover from public, anon, authenticated;
comment on table intent.broadcast_cutover is
  'Intent: the newest event position when the broadcast trigger was replaced by the relay; '
  'the relay writes no messages for positions up to it (the trigger did).';

insert into intent.broadcast_cutover (trigger_sent_through)
select coalesce(max(e.position), 0) from intent.events e;

-- The relay's checkpoint: the last event below the horizon (all of them final and sent).
insert into intent.checkpoints (consumer, transaction_id, position)
select 'intent.realtime_relay', coalesce(last.transaction_id, '0'::xid8),
       coalesce(last.position, 0)
  from (select) one
  left join lateral (
    select e.transaction_id, e.position from intent.events e
     where e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     order by e.transaction_id desc, e.position desc
     limit 1
  ) last on true;

-- One relay step ------------------------------------------------------------------------
create or replace function intent.relay_broadcasts(p_limit integer default 1000)
returns table (relayed integer, checkpoint_transaction_id xid8, checkpoint_position bigint)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_transaction_id xid8;
  v_position bigint;
  v_error jsonb;
  v_sent_through bigint;
begin
  if p_limit is null or p_limit < 1 or p_limit > 100000 then
    raise exception 'intent.relay_broadcasts: p_limit must be between 1 and 100000, not %',
      p_limit using errcode = 'invalid_parameter_value';
  end if;
  -- First a look without a lock, for the idle case: a read takes no transaction id and
  -- writes nothing, and a relay polls often. It only ever concludes "nothing yet".
  select c.transaction_id, c.position, c.error into v_transaction_id, v_position, v_error
    from intent.checkpoints c
   where c.consumer = 'intent.realtime_relay';
  if not found then
    raise exception 'the broadcast relay has no checkpoint (intent.checkpoints row '
      '''intent.realtime_relay'')' using errcode = 'no_data_found',
      hint = 'the *_broadcast_relay.sql migration creates it; restore it at the feed''s head';
  end if;
  -- The first waiting event, not EXISTS: a plpgsql statement may be run with a generic
  -- plan, which does not know where the checkpoint is, and for EXISTS over the bound on
  -- (transaction_id, position) that plan is a sequential scan of intent.events (100 ms a
  -- call at half a million events, many calls a second). ORDER BY ... LIMIT 1 is served by
  -- events_feed_idx whatever the plan (tests/integration/test_relay_plans.py).
  if v_error is null and (
    select e.position from intent.events e
     where (e.transaction_id, e.position) > (v_transaction_id, v_position)
       and e.transaction_id < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
     order by e.transaction_id, e.position
     limit 1) is null
  then
    return query select 0, v_transaction_id, v_position;
    return;
  end if;

  -- The checkpoint as it is now, locked: the newest committed one (READ COMMITTED follows
  -- the row to its latest version), or none while another relay holds it.
  select c.transaction_id, c.position, c.error into v_transaction_id, v_position, v_error
    from intent.checkpoints c
   where c.consumer = 'intent.realtime_relay'
     for update skip locked;
  if not found then
    return query select 0, null::xid8, null::bigint;  -- another relay is at work
    return;
  end if;
  v_sent_through := coalesce(
    (select s.trigger_sent_through from intent.broadcast_cutover s), 0);

  -- One statement, one snapshot: the page, its messages and the checkpoint's move.
  with page as materialized (
    select e.event_id, e.tenant_id, e.aggregate_type, e.aggregate_id, e.version, e.event_type,
           e.schema_version, e.payload, e.metadata, e.recorded_at,
           e.transaction_id as txid, e.position as pos
      from intent.events e
     where (e.transaction_id, e.position) > (v_transaction_id, v_position)
       and e.transaction_id < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
     order by e.transaction_id, e.position
     limit p_limit
  ),
  sent as (
    insert into realtime.messages (id, topic, extension, event, payload, private)
    select case when t.per_aggregate then b.event_id else pg_catalog.gen_random_uuid() end,
           t.topic, 'broadcast', b.event_type, b.body, true
      from (select p.event_id, p.tenant_id, p.aggregate_type, p.aggregate_id, p.event_type,
                   p.txid, p.pos,
                   pg_catalog.jsonb_build_object(
                     'event_id', p.event_id,
                     'event_type', p.event_type,
                     'schema_version', p.schema_version,
                     'aggregate_type', p.aggregate_type,
                     'aggregate_id', p.aggregate_id,
                     'version', p.version,
                     'position', p.pos,
                     'payload', p.payload,
                     'metadata', p.metadata,
                     'recorded_at', p.recorded_at,
                     'id', p.event_id) as body
              from page p
             where p.pos > v_sent_through  -- up to there, the trigger sent them
            offset 0  -- kept as a subquery: each body is built once, for both topics
           ) b
     cross join lateral (
       values (false, 'intent:tenant:' || b.tenant_id::text),
              (true, 'intent:aggregate:' || b.tenant_id::text || ':' || b.aggregate_type
                     || ':' || b.aggregate_id::text)
     ) as t(per_aggregate, topic)
     order by b.txid, b.pos, t.per_aggregate
  ),
  tail as (
    select p.txid, p.pos from page p order by p.txid desc, p.pos desc limit 1
  ),
  moved as (
    update intent.checkpoints c
       set transaction_id = l.txid, position = l.pos, error = null, updated_at = pg_catalog.now()
      from tail l
     where c.consumer = 'intent.realtime_relay'
  )
  select (select pg_catalog.count(*) from page)::integer, l.txid, l.pos
    into relayed, checkpoint_transaction_id, checkpoint_position
    from (select) one left join tail l on true;

  if relayed = 0 then
    checkpoint_transaction_id := v_transaction_id;
    checkpoint_position := v_position;
    if v_error is not null then  -- the call that failed before now succeeds
      update intent.checkpoints c set error = null, updated_at = pg_catalog.now()
       where c.consumer = 'intent.realtime_relay';
    end if;
  end if;
  return next;
end
$$;

-- Owned by postgres (bypasses RLS, may insert into realtime.messages); only the runtime runs it.
alter function intent.relay_broadcasts(integer) owner to postgres;
revoke all on function intent.relay_broadcasts(integer) from public, anon, authenticated;
grant execute on function intent.relay_broadcasts(integer) to intent_worker;
comment on function intent.relay_broadcasts(integer) is
  'Intent''s broadcast relay, one step: the next events of the global feed after the '
  'checkpoint ''intent.realtime_relay'' (at most p_limit, never past an open transaction) '
  'become one message each on intent:tenant:<tenant> and intent:aggregate:<tenant>:<type>:'
  '<id>, and the checkpoint moves, in one transaction. Returns how many events it passed '
  'and the checkpoint (0 and nulls when another relay holds the checkpoint).';

-- How far behind the relay is ---------------------------------------------------------
create or replace function intent.broadcast_lag(p_cap integer default 100000)
returns table (waiting_events bigint, oldest_waiting interval, capped boolean)
language sql
stable
security definer
set search_path = ''
as $$
  select pg_catalog.count(*),
         coalesce(pg_catalog.now() - pg_catalog.min(w.recorded_at), interval '0'),
         pg_catalog.count(*) >= p_cap
    from intent.checkpoints c
    cross join lateral (
      select e.recorded_at from intent.events e
       where (e.transaction_id, e.position) > (c.transaction_id, c.position)
         and e.position > coalesce(
               (select s.trigger_sent_through from intent.broadcast_cutover s), 0)
       order by e.transaction_id, e.position  -- the feed index, whatever the plan
       limit p_cap
    ) w
   where c.consumer = 'intent.realtime_relay'
$$;

alter function intent.broadcast_lag(integer) owner to postgres;
revoke all on function intent.broadcast_lag(integer) from public, anon, authenticated;
grant execute on function intent.broadcast_lag(integer) to intent_worker;
comment on function intent.broadcast_lag(integer) is
  'Intent''s broadcast relay: events committed after its checkpoint and not yet broadcast '
  '(counted up to p_cap), and how long the oldest of them has waited.';
