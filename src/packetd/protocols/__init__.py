"""Protocol decoders: one sans-I/O package per protocol, and the explicit registry table (`registry.py`)."""
