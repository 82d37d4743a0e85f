"""MySQL / MariaDB client/server protocol: decoder, messages and options."""
