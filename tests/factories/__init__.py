"""Plain async factories: `await make_product(session, sku=...)`. They flush, never commit."""
