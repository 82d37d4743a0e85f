"""A size-rotated file of lines (`--roundtrips.file`, `--roundtrips.size` MB, `--roundtrips.backups`).

`name` is written until the next line would make it larger than `max_bytes`; then `name.N` files shift up
(`name.1` is the newest backup), the oldest beyond `backups` is deleted, and a new `name` starts. A line
is never split across files and is written with a single `write` call.

`write_lines` (the agent's) writes a batch and survives the disk: when a write fails (no space left, a
file system remounted read-only, an I/O error), what was written of the failing chunk is cut off again
(`ftruncate` to the last whole line, so a reader never sees half a line), the file is closed, and the
error is returned with the number of lines that did reach the file; the next call reopens the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import BinaryIO


class RotatingFile:
    def __init__(self, path: str, max_bytes: int, backups: int, buffered: bool = True) -> None:
        if max_bytes <= 0:
            raise ValueError("rotation size must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        self._buffering = -1 if buffered else 0  # unbuffered: one write(2) per batch, nothing held back
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._file: BinaryIO | None = None
        self._size = 0
        self._open()
        self.rotations = 0

    def _open(self) -> BinaryIO:
        f: BinaryIO = open(self.path, "ab", buffering=self._buffering)  # noqa: SIM115 - kept open
        self._file = f
        self._size = f.tell()
        return f

    def write_line(self, line: bytes) -> None:
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        f = self._file if self._file is not None else self._open()
        f.write(line)
        self._size += len(line)

    def write_lines(self, lines: Sequence[bytes]) -> tuple[int, OSError | None]:
        """Append whole lines; (how many reached the file, the error that stopped the rest or None)."""
        done = 0
        try:
            f = self._file if self._file is not None else self._open()
            f.flush()  # anything write_line left in the buffer goes first
            while done < len(lines):
                if self._size and self._size + len(lines[done]) > self.max_bytes:
                    self._rotate()
                    f = self._file if self._file is not None else self._open()
                end, size = done + 1, self._size + len(lines[done])
                while end < len(lines) and size + len(lines[end]) <= self.max_bytes:
                    size += len(lines[end])
                    end += 1
                self._write_all(f, b"".join(lines[done:end]))
                self._size = size
                done = end
        except OSError as exc:
            self._abandon()
            return done, exc
        return done, None

    def _write_all(self, f: BinaryIO, chunk: bytes) -> None:
        view = memoryview(chunk)
        fd = f.fileno()
        while view:
            n = os.write(fd, view)  # a full disk gives a short write first, then ENOSPC
            view = view[n:]

    def _abandon(self) -> None:
        """After a failed write: cut the partial line off and close without flushing anything more."""
        f, self._file = self._file, None
        if f is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(f.fileno(), self._size)  # frees the space it took, too
        raw = getattr(f, "raw", f)  # a buffered file's buffer must not be written after this
        with contextlib.suppress(OSError):
            raw.close()

    def _rotate(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            f.close()
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
        self._open()
        self.rotations += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.close()
            except OSError:
                getattr(f, "raw", f).close()
