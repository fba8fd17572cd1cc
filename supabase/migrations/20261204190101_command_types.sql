-- The command types the SQL ingress accepts (intent.command_types), generated from the
-- Python registry (domain.app.registry) by `intent commands generate`. Do not edit: change
-- the registry and generate again. Each generated migration replaces the whole list, so the
-- newest one alone says what is allowed.
-- intent:command-types sha256=44a12a22298316fdb64ad9c2177fd57cb3e60be646395f7a42948209c5e44469

delete from intent.command_types where true;

insert into intent.command_types (command_type, aggregate_type, aggregate_id_field, roles, payload_limits)
values
  ('inventory.receive_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[], '[{"field":"item_id","path":"$.\"item_id\"","type":"string"},{"exclusiveMinimum":0,"field":"quantity","maximum":9223372036854775807,"path":"$.\"quantity\"","type":"integer"}]'::jsonb),
  ('inventory.register_item', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[], '[{"field":"item_id","path":"$.\"item_id\"","type":"string"},{"field":"name","maxLength":200,"minLength":1,"path":"$.\"name\"","type":"string"},{"field":"sku","maxLength":64,"minLength":1,"path":"$.\"sku\"","type":"string"}]'::jsonb),
  ('inventory.release_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[], '[{"field":"item_id","path":"$.\"item_id\"","type":"string"},{"field":"order_id","path":"$.\"order_id\"","type":"string"}]'::jsonb),
  ('inventory.reserve_stock', 'inventory.item', 'item_id', array['authenticated', 'service_role']::text[], '[{"field":"item_id","path":"$.\"item_id\"","type":"string"},{"field":"order_id","path":"$.\"order_id\"","type":"string"},{"exclusiveMinimum":0,"field":"quantity","maximum":9223372036854775807,"path":"$.\"quantity\"","type":"integer"}]'::jsonb),
  ('orders.cancel_order', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[], '[{"field":"order_id","path":"$.\"order_id\"","type":"string"},{"field":"reason","maxLength":200,"minLength":1,"path":"$.\"reason\"","type":"string"}]'::jsonb),
  ('orders.confirm_payment', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[], '[{"field":"order_id","path":"$.\"order_id\"","type":"string"}]'::jsonb),
  ('orders.place_order', 'orders.order', 'order_id', array['authenticated', 'service_role']::text[], '[{"field":"item_id","path":"$.\"item_id\"","type":"string"},{"field":"order_id","path":"$.\"order_id\"","type":"string"},{"exclusiveMinimum":0,"field":"quantity","maximum":10000,"path":"$.\"quantity\"","type":"integer"}]'::jsonb);
