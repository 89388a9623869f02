// What a web app does with Stockroom, end to end, through the typed client:
//   STOCKROOM_URL=http://127.0.0.1:8000 STOCKROOM_EMAIL=... STOCKROOM_PASSWORD=... npm start
// It prints one JSON line describing what happened (the test suite reads it).
import { ProblemError, Session, createStockroomClient, idempotencyKey } from "./client.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  const baseUrl = env("STOCKROOM_URL");
  const session = new Session(baseUrl);
  await session.login(env("STOCKROOM_EMAIL"), env("STOCKROOM_PASSWORD"));
  const refreshed = await session.refresh();
  const api = createStockroomClient(baseUrl, session);
  const tag = Date.now().toString(36).toUpperCase();

  const warehouse = await api.POST("/api/v1/warehouses", {
    body: { code: `WEB-${tag}`, name: "Web shop", address: null },
  });
  if (warehouse.error) throw new ProblemError(warehouse.error);
  const product = await api.POST("/api/v1/products", {
    body: { sku: `WEB-${tag}`, name: "Web widget", sale_price: "12.50" },
  });
  if (product.error) throw new ProblemError(product.error);
  const productId = product.data.id;
  const warehouseId = warehouse.data.id;

  // The same product again: 409 `duplicate_sku`, which the app answers by using the one there.
  const duplicate = await api.POST("/api/v1/products", {
    body: { sku: `web-${tag}`, name: "Web widget again", sale_price: "12.50" },
  });
  const duplicateCode = duplicate.error?.code;

  // A receipt, sent twice with one Idempotency-Key as a retry after a timeout would be:
  // the second answer is the first one replayed, and the stock moves once.
  const key = idempotencyKey();
  const receipt = {
    product_id: productId,
    warehouse_id: warehouseId,
    type: "receipt" as const,
    quantity: 10,
    reference: `PO-${tag}`,
  };
  const first = await api.POST("/api/v1/stock-movements", {
    body: receipt,
    params: { header: { "Idempotency-Key": key } },
  });
  if (first.error) throw new ProblemError(first.error);
  const retry = await api.POST("/api/v1/stock-movements", {
    body: receipt,
    params: { header: { "Idempotency-Key": key } },
  });
  if (retry.error) throw new ProblemError(retry.error);
  const replayed = retry.response.headers.get("Idempotent-Replayed") === "true";

  // A sale of more than is on hand: 409 `insufficient_stock`. The app reacts by its code:
  // it reads what is on hand and sells that instead.
  let conflictCode: string | undefined;
  let sold = 0;
  const sale = await api.POST("/api/v1/stock-movements", {
    body: { product_id: productId, warehouse_id: warehouseId, type: "sale", quantity: 15 },
    params: { header: { "Idempotency-Key": idempotencyKey() } },
  });
  if (sale.error) {
    conflictCode = sale.error.code;
    if (sale.error.code !== "insufficient_stock") throw new ProblemError(sale.error);
    const detail = await api.GET("/api/v1/products/{product_id}", {
      params: { path: { product_id: productId } },
    });
    if (detail.error) throw new ProblemError(detail.error);
    const onHand = detail.data.on_hand;
    const partial = await api.POST("/api/v1/stock-movements", {
      body: { product_id: productId, warehouse_id: warehouseId, type: "sale", quantity: onHand },
      params: { header: { "Idempotency-Key": idempotencyKey() } },
    });
    if (partial.error) throw new ProblemError(partial.error);
    sold = partial.data.quantity;
  }

  // Lists with filters and sort; `sort` only takes the values the server documents.
  const products = await api.GET("/api/v1/products", {
    params: { query: { q: `WEB-${tag}`, is_active: true, sort: "-created_at", page_size: 10 } },
  });
  if (products.error) throw new ProblemError(products.error);
  const movements = await api.GET("/api/v1/stock-movements", {
    params: { query: { product_id: productId, type: "sale", page: 1, page_size: 20 } },
  });
  if (movements.error) throw new ProblemError(movements.error);

  console.log(
    JSON.stringify({
      refreshed,
      warehouse_id: warehouseId,
      product_id: productId,
      duplicate_code: duplicateCode,
      replayed,
      replayed_same_movement: retry.data.id === first.data.id,
      conflict_code: conflictCode,
      sold,
      listed_skus: products.data.items.map((item) => item.sku),
      listed_total: products.data.total,
      sale_quantities: movements.data.items.map((item) => item.quantity),
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
