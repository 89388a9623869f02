"""The read side of the activity event store: queries, exports, dashboards."""
