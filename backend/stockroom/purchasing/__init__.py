"""Purchase orders: drafted, submitted to a supplier, received in parts into one warehouse."""
