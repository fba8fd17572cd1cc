-- The command types the SQL ingress accepts (intent.command_types), generated from the
-- Python registry (domain.app.registry) by `intent commands generate`. Do not edit: change
-- the registry and generate again. Each generated migration replaces the whole list, so the
-- newest one alone says what is allowed.
-- intent:command-types sha256=ec63209a5847034b6297fe315fc208397f7cca8fce869b8c259a2a873627ccba

delete from intent.command_types where true;

insert into intent.command_types (command_type, aggregate_type, aggregate_id_field, roles)
values
  ('inventory.receive_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.register_item', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.release_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.reserve_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]);
