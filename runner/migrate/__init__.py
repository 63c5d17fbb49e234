"""SQL migrations: files in migrations/, applied in order and recorded in a history table."""
