"""The DuckDB warehouse: schema creation, read-only connections and atomic publish.

Writers never touch the published file. ``write_session`` copies it to a new file beside it, yields a
connection, runs every contract check, and only then swaps the new file in with ``os.replace`` (atomic
on POSIX). A writer killed midway leaves the published file as it was; the dashboard's read-only
connections reopen when the file changes (``PublishedWarehouse``).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from onemap.contracts import SCHEMAS, TABLES


class ContractViolation(RuntimeError):
    """A zero-row check returned rows; the new warehouse file is not published."""


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame) -> Iterator[None]:
    """A pandas frame or Arrow table visible to SQL as ``name`` for the length of the block (scanned in place, not
    copied), and gone after it, also when a statement fails."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


def _configure(con: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """The deployment's time zone (calendar days, period bounds) and no extension downloads, for this database
    and every cursor of it: GLOBAL, because a plain SET holds for this connection only, and the dashboard's
    threads each query through a ``cursor()``, which starts from the defaults (UTC; autoload on)."""
    con.execute(f"SET GLOBAL TimeZone = '{timezone}'")  # the zone name comes from settings, not from users
    con.execute("SET GLOBAL autoinstall_known_extensions = false")
    con.execute("SET GLOBAL autoload_known_extensions = false")


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing: schemas, tables, and columns a newer contract added to an existing table
    (nullable by rule, so that old rows stay valid; whoever fills a new column notices the NULLs)."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for t in TABLES:
        con.execute(t.ddl())
        have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                          "AND table_name = ?", [t.schema, t.name]).fetchall()}
        for c in t.columns:
            if c.name not in have:
                if not c.nullable:
                    raise RuntimeError(f"{t.qualified}.{c.name} is new in the contract and NOT NULL: existing "
                                       "warehouses cannot gain it; make it nullable")
                con.execute(f"ALTER TABLE {t.qualified} ADD COLUMN {c.name} {c.type}")


def check_contracts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Run every table's zero-row checks; return a description of each failure."""
    failures = []
    for t in TABLES:
        for description, sql in t.checks:
            rows = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
            if rows:
                failures.append(f"{t.qualified}: {description}: {rows} offending rows")
    return failures


def missing_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Contract columns the warehouse's tables lack (a file written by an earlier version of One Map)."""
    have = {tuple(r) for r in con.execute("SELECT table_schema, table_name, column_name "
                                          "FROM information_schema.columns").fetchall()}
    return [f"{t.qualified}.{c.name}" for t in TABLES for c in t.columns if (t.schema, t.name, c.name) not in have]


def connect_readonly(path: Path, timezone: str = "Asia/Shanghai", require_current: bool = True
                     ) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse; refuses, saying what to do, a file written by an
    earlier version (``onemap build`` adds the new columns and fills them). The pipelines, which bring such a
    file up to date, read it with ``require_current=False``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no warehouse at {path}: run `onemap ingest` and `onemap build` (or `onemap demo`)")
    con = duckdb.connect(str(path), read_only=True)
    _configure(con, timezone)
    missing = missing_columns(con) if require_current else []
    if missing:
        con.close()
        raise ValueError(f"{path} was written by an earlier version of One Map (it lacks {', '.join(missing[:5])}"
                         f"{' …' if len(missing) > 5 else ''}): run `onemap build` once to bring it up to date")
    return con


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """One writer at a time (a write session, an undo); readers are never blocked."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def write_session(path: Path, timezone: str = "Asia/Shanghai", keep_previous: Path | None = None,
                  on_publish=None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection to a private copy of the warehouse; publish it atomically if all checks pass.

    ``keep_previous``: where the file it replaces is kept (a hard link: no copy is made), so that the write can
    be taken back (``onemap.undo``); ``on_publish``: called right after the publish, still under the writer lock
    (the undo note, numbered in publish order)."""
    path = Path(path)
    with writer_lock(path):
        for stale in path.parent.glob(f".{path.name}.*.building*"):  # left by a writer that was killed
            stale.unlink()
        work = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.building")
        try:
            if path.is_file():
                shutil.copyfile(path, work)
            con = duckdb.connect(str(work))
            try:
                _configure(con, timezone)
                create_schema(con)
                yield con
                failures = check_contracts(con)
                if failures:
                    raise ContractViolation("warehouse not published:\n  " + "\n  ".join(failures))
                con.execute("CHECKPOINT")
            finally:
                con.close()
            with open(work, "rb") as fh:
                os.fsync(fh.fileno())
            # the warehouse holds pseudonyms, redacted texts and where each complaint came from: owner-only, as
            # the raw exports and the secrets are (the map runs as the same account)
            work.chmod(0o600)
            path.parent.chmod(0o700)
            if keep_previous is not None and path.is_file():
                keep_previous.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.link(path, keep_previous)
            os.replace(work, path)
            if on_publish is not None:
                on_publish()
        finally:
            for leftover in (work, work.with_name(work.name + ".wal")):
                if leftover.exists():
                    leftover.unlink()


class PublishedWarehouse:
    """A read-only connection that reopens itself when a new warehouse file has been published."""

    def __init__(self, path: Path, timezone: str = "Asia/Shanghai"):
        self.path = Path(path)
        self.timezone = timezone
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple[int, int] | None = None

    def _current_stamp(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return (st.st_ino, st.st_mtime_ns)

    def connection(self) -> duckdb.DuckDBPyConnection:
        stamp = self._current_stamp()
        if self._con is None or stamp != self._stamp:
            if self._con is not None:
                self._con.close()
            self._con = connect_readonly(self.path, self.timezone)
            self._stamp = stamp
        return self._con.cursor()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
