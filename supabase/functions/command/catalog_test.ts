import { strictEqual, throws } from "node:assert/strict";
import { catalog, parseCatalog } from "../_shared/catalog.ts";

Deno.test("the generated catalogue loads with every command type and the ingress limit", () => {
  strictEqual(catalog.maxPayloadBytes, 65536);
  const place = catalog.commands.get("orders.place_order");
  strictEqual(place?.aggregateType, "orders.order");
  strictEqual(place?.idField, "order_id");
  strictEqual(catalog.commands.has("inventory.register_item"), true);
});

Deno.test("a broken catalogue fails at start-up, naming the problem", () => {
  throws(() => parseCatalog([]), /not a JSON object/);
  throws(() => parseCatalog({ max_payload_bytes: 0, commands: {} }), /max_payload_bytes/);
  throws(
    () =>
      parseCatalog({
        max_payload_bytes: 10,
        commands: { "a.b": { aggregate_type: "a", aggregate_id_field: "id", roles: [] } },
      }),
    /a\.b: needs/,
  );
  throws(
    () =>
      parseCatalog({
        max_payload_bytes: 10,
        commands: {
          "a.b": {
            aggregate_type: "a",
            aggregate_id_field: "id",
            roles: [],
            schema: { if: {} },
          },
        },
      }),
    /unsupported schema keywords #\/if/,
  );
});
