"""Categories, suppliers, warehouses and products; CSV import and export."""
