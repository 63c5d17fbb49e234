"""ClickHouse access: one client for the embedded engine and for servers."""
