"""PostgreSQL (frontend/backend protocol 3): decoder, messages and options."""
