-- Projection tables, generated from the projection metadata (projections/app.py) by
-- `intent projections generate`. Do not edit: change the metadata and generate again.
-- The state block records the layout this migration brings the database to; the next
-- generation starts from the newest one, and `intent projections check` fails when it is
-- not the metadata's.
--
-- Changes:
--   public.order_summaries: table missing: created with its indexes, RLS, policies and grants
--   public.stock_levels: table missing: created with its indexes, RLS, policies and grants
--
-- intent:projections-state sha256=51df0c7f933118732907515ce9bd75557a7462cdd38aeda90acd1a0487541ff3
-- {
--   "format": 1,
--   "projections": [
--     {
--       "name": "order_summaries",
--       "readers": [
--         "authenticated"
--       ],
--       "realtime": false,
--       "schema_name": "public",
--       "tables": [
--         {
--           "columns": [
--             {
--               "default": null,
--               "name": "tenant_id",
--               "nullable": false,
--               "type": "uuid"
--             },
--             {
--               "default": null,
--               "name": "order_id",
--               "nullable": false,
--               "type": "uuid"
--             },
--             {
--               "default": null,
--               "name": "item_id",
--               "nullable": true,
--               "type": "uuid"
--             },
--             {
--               "default": null,
--               "name": "quantity",
--               "nullable": true,
--               "type": "integer"
--             },
--             {
--               "default": "placed",
--               "name": "status",
--               "nullable": false,
--               "type": "text"
--             },
--             {
--               "default": null,
--               "name": "cancel_reason",
--               "nullable": true,
--               "type": "text"
--             },
--             {
--               "default": null,
--               "name": "placed_at",
--               "nullable": true,
--               "type": "timestamptz"
--             },
--             {
--               "default": null,
--               "name": "updated_at",
--               "nullable": true,
--               "type": "timestamptz"
--             }
--           ],
--           "indexes": [
--             {
--               "columns": [
--                 "tenant_id",
--                 "status"
--               ],
--               "unique": false
--             }
--           ],
--           "name": "order_summaries",
--           "primary_key": [
--             "tenant_id",
--             "order_id"
--           ]
--         }
--       ]
--     },
--     {
--       "name": "stock_levels",
--       "readers": [
--         "authenticated"
--       ],
--       "realtime": true,
--       "schema_name": "public",
--       "tables": [
--         {
--           "columns": [
--             {
--               "default": null,
--               "name": "tenant_id",
--               "nullable": false,
--               "type": "uuid"
--             },
--             {
--               "default": null,
--               "name": "item_id",
--               "nullable": false,
--               "type": "uuid"
--             },
--             {
--               "default": null,
--               "name": "sku",
--               "nullable": true,
--               "type": "text"
--             },
--             {
--               "default": null,
--               "name": "name",
--               "nullable": true,
--               "type": "text"
--             },
--             {
--               "default": 0,
--               "name": "on_hand",
--               "nullable": false,
--               "type": "bigint"
--             },
--             {
--               "default": 0,
--               "name": "reserved",
--               "nullable": false,
--               "type": "bigint"
--             },
--             {
--               "default": {
--                 "sql_function": "now()"
--               },
--               "name": "updated_at",
--               "nullable": false,
--               "type": "timestamptz"
--             }
--           ],
--           "indexes": [
--             {
--               "columns": [
--                 "tenant_id",
--                 "sku"
--               ],
--               "unique": false
--             }
--           ],
--           "name": "stock_levels",
--           "primary_key": [
--             "tenant_id",
--             "item_id"
--           ]
--         }
--       ]
--     }
--   ]
-- }
-- intent:projections-state end

CREATE TABLE public.order_summaries (
  tenant_id UUID NOT NULL,
  order_id UUID NOT NULL,
  item_id UUID,
  quantity INT,
  status TEXT DEFAULT 'placed' NOT NULL,
  cancel_reason TEXT,
  placed_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ,
  event_txid BIGINT NOT NULL,
  event_position BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX order_summaries_tenant_id_status_idx ON public.order_summaries(tenant_id, status);
COMMENT ON TABLE public.order_summaries IS 'intent projection order_summaries';
ALTER TABLE public.order_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.order_summaries FORCE ROW LEVEL SECURITY;
CREATE POLICY authenticated_tenant_read ON public.order_summaries AS PERMISSIVE FOR SELECT TO authenticated USING (tenant_id = (SELECT intent.current_tenant_id()));
REVOKE ALL ON TABLE public.order_summaries FROM public, anon, authenticated, service_role;
GRANT SELECT ON TABLE public.order_summaries TO authenticated;

CREATE TABLE public.stock_levels (
  tenant_id UUID NOT NULL,
  item_id UUID NOT NULL,
  sku TEXT,
  name TEXT,
  on_hand BIGINT DEFAULT 0 NOT NULL,
  reserved BIGINT DEFAULT 0 NOT NULL,
  updated_at TIMESTAMPTZ DEFAULT NOW() NOT NULL,
  event_txid BIGINT NOT NULL,
  event_position BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, item_id)
);
CREATE INDEX stock_levels_tenant_id_sku_idx ON public.stock_levels(tenant_id, sku);
COMMENT ON TABLE public.stock_levels IS 'intent projection stock_levels';
ALTER TABLE public.stock_levels ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.stock_levels FORCE ROW LEVEL SECURITY;
CREATE POLICY authenticated_tenant_read ON public.stock_levels AS PERMISSIVE FOR SELECT TO authenticated USING (tenant_id = (SELECT intent.current_tenant_id()));
REVOKE ALL ON TABLE public.stock_levels FROM public, anon, authenticated, service_role;
GRANT SELECT ON TABLE public.stock_levels TO authenticated;
ALTER PUBLICATION supabase_realtime ADD TABLE public.stock_levels;
