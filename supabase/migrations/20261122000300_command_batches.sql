-- Batches: what a pump claimed together, and the unit a worker processes in one transaction.
-- A batch stays 'dispatched' until its processing commits; the pump's sweep dispatches again
-- any batch left dispatched too long (its processing is idempotent: done commands are
-- skipped).

create table intent.batches (
  batch_id uuid primary key,
  status text not null default 'dispatched',
  command_count integer not null,
  claimed_by text,
  dispatches integer not null default 1,
  last_error jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint batches_status_known check (status in ('dispatched', 'done')),
  constraint batches_count_positive check (command_count > 0)
);
create index batches_open_idx on intent.batches (updated_at) where status = 'dispatched';

-- The claim skips aggregates that already have a command in flight, so that a later command
-- never overtakes an earlier one on the same aggregate; and a worker reads its batch by id.
create index commands_in_flight_idx on intent.commands (aggregate_type, aggregate_id)
  where status = 'dispatched';
create index commands_batch_idx on intent.commands (batch_id) where batch_id is not null;

alter table intent.batches enable row level security;
alter table intent.batches force row level security;
-- No client policy: batches are the runtime's business.
revoke all on intent.batches from public, anon, authenticated;
grant all on intent.batches to service_role;
