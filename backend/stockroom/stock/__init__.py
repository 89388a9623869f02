"""The stock ledger: movements, levels, transfers and counts."""
