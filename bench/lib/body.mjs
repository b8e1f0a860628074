// The origin's answer in every scenario: a ~200-byte JSON document, like a small API read.
export const ORIGIN_BODY = JSON.stringify({
  id: "ord_7Hq2Lx9Pz4Kw",
  status: "shipped",
  customer: { id: "cus_41", tier: "gold" },
  items: [
    { sku: "A-1001", qty: 2, price: 1299 },
    { sku: "B-2002", qty: 1, price: 4999 },
  ],
  total: 7597,
  currency: "EUR",
  updatedAt: "2026-11-30T06:00:00Z",
});
