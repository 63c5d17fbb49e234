"""Services: one function per CLI command, taking settings and a registry explicitly."""
