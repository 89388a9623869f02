"""SQL reports over the relational source of truth."""
