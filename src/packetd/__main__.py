"""`python -m packetd` is the same as the `packetd` console script."""

from __future__ import annotations

from packetd.cli import main

if __name__ == "__main__":
    main()
