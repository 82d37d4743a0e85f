"""Redis (RESP2 and RESP3): decoder, messages and options."""
