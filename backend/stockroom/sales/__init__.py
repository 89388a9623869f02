"""Sales orders: confirmed orders reserve stock, shipments consume the reservation."""
