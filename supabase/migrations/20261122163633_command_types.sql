-- The command types the SQL ingress accepts (intent.command_types), generated from the
-- Python registry (domain.app.registry) by `intent commands generate`. Do not edit: change
-- the registry and generate again. Each generated migration replaces the whole list, so the
-- newest one alone says what is allowed.
-- intent:command-types sha256=7a8de3c30dc86802302354e92baf6582fd3f3a094609141a21f1750521ff954f

delete from intent.command_types where true;

insert into intent.command_types (command_type, aggregate_type, aggregate_id_field, roles)
values
  ('inventory.receive_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.register_item', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.release_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('inventory.reserve_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[]),
  ('orders.cancel_order', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[]),
  ('orders.confirm_payment', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[]),
  ('orders.place_order', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[]);
