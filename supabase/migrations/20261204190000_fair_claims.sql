-- Fair claims: the pump claims pending commands tenant by tenant in turns (each tenant's
-- oldest first, then each tenant's second, ...), so that a tenant with thousands of
-- pending commands cannot make another tenant's lone command wait behind them; and, while
-- its batches are all busy, a light lane claims for the tenants with nothing in flight.
--
-- The claim walks the tenants that have pending commands with a skip scan of this index
-- (one probe per tenant), then reads each tenant's oldest commands from it.
create index commands_pending_tenant_idx on intent.commands (tenant_id, seq)
  where status = 'pending';

-- The light lane's claim takes only tenants with nothing in flight: this index answers
-- "has this tenant a dispatched command?" with one probe.
create index commands_dispatched_tenant_idx on intent.commands (tenant_id)
  where status = 'dispatched';
