"""Taking back a load: `onemap undo` puts back the warehouse as it was before the latest `onemap ingest`.

A load that should not have happened (the wrong county's export, the wrong profile, a file sent twice under two
names) is found days later as often as at once. Each ingest keeps the warehouse file it replaced (a hard link made
at publish, ``onemap.warehouse.write_session``: no copy, no time) under ``warehouse/undo/``, with a note of what it
loaded. Undo swaps that file back in, so every table is exactly as it was (events, status history, links,
quarantine, aggregates and scores), with no reverse arithmetic to get wrong. Only the latest load can be taken back,
and again the one before it, as far as the kept files reach (``[ingest] undo_keep``, default 3). Builds and boundary
loads published since go back too; the preview says so. The raw copies stay under ``raw/``: the file can be loaded
again. Each undo is written to ``logs/undone_loads.jsonl`` (who, when, what), which ``onemap loads`` shows.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from onemap.settings import Settings
from onemap.warehouse import connect_readonly, writer_lock

NOTE_SUFFIX = ".json"
LOG_NAME = "undone_loads.jsonl"


def undo_dir(settings: Settings) -> Path:
    """Beside the warehouse: a hard link needs the same file system."""
    return settings.warehouse_path.parent / "undo"


def snapshot_path(settings: Settings, loaded_at: dt.datetime) -> Path:
    """Where a load keeps the warehouse it replaces until its note is written (``keep`` renames it)."""
    return undo_dir(settings) / f"pending-{loaded_at:%Y%m%dT%H%M%S%f}.duckdb"


def keep(settings: Settings, snapshot: Path, loaded_at: dt.datetime, source: str, loads: list[dict],
         state: dict | None = None) -> None:
    """Note what the load that replaced ``snapshot`` brought in, and drop the oldest undo points beyond
    ``undo_keep``. Called right after the publish, under the writer lock (``write_session``'s ``on_publish``), so
    that the notes are numbered in the order the loads were published whatever the clock says. ``state``: what the
    warehouse held at the publish (its builds and boundary vintages), so that undo names only those made since. A
    load that loaded nothing new (files already loaded) leaves no undo point."""
    if not loads or settings.undo_keep == 0:
        snapshot.unlink(missing_ok=True)
    else:
        seq = max((int(n.name.split("-")[1]) for n in _notes(settings)), default=0) + 1
        stem = f"undo-{seq:06d}-{loaded_at:%Y%m%dT%H%M%S}"
        kept = snapshot.with_name(stem + ".duckdb")
        if snapshot.is_file():
            snapshot.replace(kept)
        note = {"loaded_at": loaded_at.isoformat(), "source": source,
                "snapshot": kept.name if kept.is_file() else None, "loads": loads, **(state or {})}
        part = kept.with_suffix(".part")
        part.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        part.write_text(json.dumps(note, ensure_ascii=False, indent=1), encoding="utf-8")
        part.replace(kept.with_suffix(NOTE_SUFFIX))
    _prune(settings)


def _notes(settings: Settings) -> list[Path]:
    """Undo notes, newest first (numbered in publish order)."""
    return sorted(undo_dir(settings).glob(f"undo-*{NOTE_SUFFIX}"), reverse=True)


def _prune(settings: Settings) -> None:
    notes = _notes(settings)
    for note in notes[settings.undo_keep:]:
        note.with_suffix(".duckdb").unlink(missing_ok=True)
        note.unlink()
    kept = {n.with_suffix(".duckdb").name for n in notes[:settings.undo_keep]}
    for orphan in [*undo_dir(settings).glob("undo-*.duckdb"), *undo_dir(settings).glob("pending-*.duckdb")]:
        if orphan.name not in kept:  # a load killed between its publish and its note; a copy kept by none
            orphan.unlink()


@dataclass
class UndoPoint:
    """The latest load, what taking it back takes back with it, and why it cannot be, if so."""
    note: Path
    loaded_at: str
    source: str
    loads: list[dict]
    snapshot: Path | None  # None: there was no warehouse before this load
    builds_since: int = 0
    vintages_since: tuple[str, ...] = ()
    blocked: str = ""

    def describe(self) -> str:
        lines = [f"the load of {self.loaded_at[:19].replace('T', ' ')} ({self.source}):"]
        for f in self.loads:
            lines.append(f"  {f['file']} (batch {f['batch_id']}): read {f['rows_read']:,} / inserted {f['inserted']:,}"
                         f" / updated {f['updated']:,} / unchanged {f['unchanged']:,} / quarantined "
                         f"{f['quarantined']:,}")
        if self.builds_since:
            lines.append(f"  also taken back: {self.builds_since} build(s) made since (the map goes back to the scores "
                         "of the build before the load)")
        if self.vintages_since:
            lines.append(f"  also taken back: boundaries loaded since ({', '.join(self.vintages_since)}): load them "
                         "again with `onemap geodata load` after")
        if self.snapshot is None:
            lines.append("  there was no warehouse before this load: undo removes it")
        return "\n".join(lines)


def latest(settings: Settings) -> UndoPoint | None:
    """The load `onemap undo` would take back: the newest one with an undo point, provided no later load (one
    without an undo point) is in the way. Notes of loads no longer in the warehouse (undone, or a publish that
    failed) are dropped."""
    if not settings.warehouse_path.is_file() or settings.undo_keep == 0:  # 0: no load can be taken back
        return None
    con = connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
    try:
        for note in _notes(settings):
            data = json.loads(note.read_text(encoding="utf-8"))
            ids = {f["batch_id"] for f in data["loads"]}
            held = [r[0] for r in con.execute("SELECT batch_id FROM meta.batches").fetchall()]
            if not ids <= set(held):  # taken back already, or never published
                note.with_suffix(".duckdb").unlink(missing_ok=True)
                note.unlink()
                continue
            snapshot = note.with_suffix(".duckdb") if data["snapshot"] else None
            point = UndoPoint(note, data["loaded_at"], data["source"], data["loads"], snapshot)
            # loads published after this one (counted, not dated: a clock set back would misorder them) that left
            # no undo point of their own: a load killed between its publish and its note, or undo_keep = 0 then
            later = len(held) - data.get("batches", len(held))
            if later > 0:
                [(file, batch, when)] = con.execute("SELECT source_file, batch_id, loaded_at FROM meta.batches "
                                                    "ORDER BY loaded_at DESC LIMIT 1").fetchall()
                point.blocked = (f"{later} later load(s) left no undo point (the latest by its clock: {file}, batch "
                                 f"{batch}, {when:%Y-%m-%d %H:%M}): a load killed between its publish and its note, "
                                 "or one made while [ingest] undo_keep was 0; undo stops there")
            elif snapshot is not None and not snapshot.is_file():
                point.blocked = f"its undo point {snapshot} is missing"
            builds = con.execute("SELECT count(*) FROM meta.builds").fetchall()[0][0]
            point.builds_since = builds - data.get("builds", builds)  # those published since the load
            try:
                vintages = [r[0] for r in con.execute("SELECT vintage FROM meta.area_vintages ORDER BY loaded_at"
                                                      ).fetchall()]
                point.vintages_since = tuple(v for v in vintages if v not in data.get("vintages", vintages))
            except duckdb.CatalogException:
                pass
            return point
        return None
    finally:
        con.close()


def undo(settings: Settings) -> UndoPoint:
    """Take back the latest load (see ``latest``); raises ValueError, saying why, when there is none to take back."""
    with writer_lock(settings.warehouse_path):
        point = latest(settings)
        if point is None:
            raise ValueError("no load to undo: undo points are kept for the last "
                             f"{settings.undo_keep} loads ([ingest] undo_keep), from this version of One Map on")
        if point.blocked:
            raise ValueError(f"cannot undo {point.describe()}\n{point.blocked}")
        if point.snapshot is None:
            settings.warehouse_path.unlink()
        else:
            os.replace(point.snapshot, settings.warehouse_path)  # readers reopen on the new file (PublishedWarehouse)
        point.note.unlink()
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        with (settings.logs_dir / LOG_NAME).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"undone_at": dt.datetime.now(ZoneInfo(settings.timezone)).isoformat(timespec="seconds"),
                                 "by": getpass.getuser(), "loaded_at": point.loaded_at, "source": point.source,
                                 "loads": point.loads, "builds_taken_back": point.builds_since,
                                 "vintages_taken_back": list(point.vintages_since)}, ensure_ascii=False) + "\n")
        return point


def undone(settings: Settings) -> list[dict]:
    """The record of loads taken back, oldest first."""
    path = settings.logs_dir / LOG_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
