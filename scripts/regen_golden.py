"""Rewrite the expected records of the golden tests: `.venv/bin/python scripts/regen_golden.py [protocol ...]`.

Review the diff like code: every changed line is a change in what packetd reports for a real capture.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.golden import RULES_FOR, as_json, manifest, run_file, write_golden


def main() -> None:
    protocols = sys.argv[1:] or sorted(RULES_FOR)
    for protocol in protocols:
        for row in manifest(protocol):
            records, _ = run_file(row.path, RULES_FOR[protocol](row))
            write_golden(row, as_json(records))
            print(f"{row.file}: {len(records)} records")


if __name__ == "__main__":
    main()
