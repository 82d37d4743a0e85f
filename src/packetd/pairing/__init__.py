"""Pairing: matchers turn messages into roundtrip records; a session drives one connection's decoder."""
