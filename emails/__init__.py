"""Email rendering: plain data in (issue, blocks, newsletter), compiled message
template out. Never touches the database or the network (DESIGN.md §5)."""
