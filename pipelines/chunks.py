"""An export handed to staging a chunk of records at a time.

Either from a file already read whole (:class:`WholeFile`), or from a large CSV that is still being parsed
in a thread (:class:`StreamedCsv`): staging starts on the first records while the rest of the file is
parsed. A streamed parse can fail part-way (a malformed row, a row longer than a parse block); the load
then waits for :meth:`StreamedCsv.rows_read` before it writes anything, gets :class:`StreamFailed`, and
reads the file whole instead, which keeps the good rows of a broken file and quarantines the rest.
"""
from __future__ import annotations

import queue
from concurrent.futures import Executor
from pathlib import Path

import pandas as pd

from pipelines.readers import ReadResult, csv_frames

STREAMED_SUFFIXES = (".csv", ".txt", ".tsv")


class StreamFailed(Exception):
    """The streamed parse stopped part-way; nothing was written, the file is to be read whole."""


class WholeFile:
    """A file read whole by ``pipelines.readers.read_export``, handed out ``rows`` records at a time."""

    def __init__(self, read: ReadResult, rows: int):
        self.read = read
        self.total: int | None = len(read.frame)
        self._starts = iter(range(0, max(len(read.frame), 1), rows))  # one (empty) chunk for an empty frame
        self._rows = rows
        self._first = True

    def next_frame(self) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
        """The next chunk and, with the first one only, the file's malformed lines; None at the end."""
        start = next(self._starts, None)
        if start is None:
            return None
        malformed, self._first = (self.read.malformed if self._first else None), False
        return self.read.frame.iloc[start:start + self._rows], malformed

    def rows_read(self) -> int:
        return self.read.rows_read


class StreamedCsv:
    """A CSV export parsed in a thread of ``pool`` (``pipelines.readers.csv_frames``), chunk by chunk."""

    total: int | None = None  # known once the parse is done

    def __init__(self, path: Path, rows: int, pool: Executor):
        self._frames: queue.Queue = queue.Queue()  # unbounded: the load writes only after the parse is done
        self._done = pool.submit(self._parse, Path(path), rows)

    def _parse(self, path: Path, rows: int) -> int:
        n = 0
        try:
            for frame in csv_frames(path, rows):
                n += len(frame)
                self._frames.put(frame)
        finally:
            self._frames.put(None)
        self.total = n
        return n

    def next_frame(self) -> tuple[pd.DataFrame, None] | None:
        frame = self._frames.get()
        if frame is None:
            self._frames.put(None)  # stay at the end
            return None
        return frame, None  # a streamed parse has no malformed lines: it fails instead

    def rows_read(self) -> int:
        """Records in the file, once it is parsed; :class:`StreamFailed` if the parse stopped."""
        try:
            return self._done.result()
        except Exception as exc:  # any problem: the whole-file reader handles and names it
            raise StreamFailed(f"{type(exc).__name__}: {exc}") from exc

    def settle(self) -> None:
        """Wait for the parse to end, whatever its outcome (a skipped or abandoned file)."""
        self._done.exception()
