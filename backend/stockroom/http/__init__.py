"""Cross-cutting HTTP building blocks shared by every domain router."""
