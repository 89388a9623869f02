"""Stock tables (built by the stock ledger issue)."""
