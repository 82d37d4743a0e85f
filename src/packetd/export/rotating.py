"""A size-rotated file of lines (`--roundtrips.file`, `--roundtrips.size` MB, `--roundtrips.backups`).

`name` is written until the next line would make it larger than `max_bytes`; then `name.N` files shift up
(`name.1` is the newest backup), the oldest beyond `backups` is deleted, and a new `name` starts. A line
is never split across files and is written with a single `write` call.
"""

from __future__ import annotations

import os
from typing import BinaryIO


class RotatingFile:
    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        if max_bytes <= 0:
            raise ValueError("rotation size must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115 - kept open for the life of the writer
        self._size = self._file.tell()
        self.rotations = 0

    def write_line(self, line: bytes) -> None:
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._size += len(line)

    def _rotate(self) -> None:
        self._file.close()
        if self.backups == 0:
            os.remove(self.path)
        else:
            oldest = f"{self.path}.{self.backups}"
            if os.path.exists(oldest):
                os.remove(oldest)
            for i in range(self.backups - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        self.rotations += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
