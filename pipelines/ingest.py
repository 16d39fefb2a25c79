"""`onemap ingest`: raw export files -> staging (validate, quarantine) -> core (upsert, history, links).

Each file is one batch; all files of one command are one transaction (one published warehouse file).
Raw files are kept, immutable and checksummed, under ``<home>/raw/<source>/``. The end-of-load summary
reconciles per batch: read = inserted + updated + unchanged + quarantined.
"""
from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from tqdm import tqdm

from geodata.areas import AreaSet, demo_area_set, load_area_set
from onemap import undo
from onemap.settings import Settings
from onemap.warehouse import connect_readonly, write_session
from pipelines.aggregate import refresh_aggregates
from pipelines.chunks import STREAMED_SUFFIXES, StreamedCsv, StreamFailed, WholeFile
from pipelines.classify import classify_pending
from pipelines.flow import load_flow, stage_flow
from pipelines.load import dry_run_counts, link_matters, quarantine, scrub_quarantine, upsert_events
from pipelines.mappings import CategoryMap
from pipelines.profiles import DEFAULT_PROFILE, PROFILE_DIR, ProfileError, load_profile
from pipelines.readers import read_export
from pipelines.stage import StageContext, file_sha256, stage_export, with_malformed

CHUNK_ROWS = 200_000  # rows staged and upserted at a time
STREAM_MIN_BYTES = 16 << 20  # a CSV this large is staged while it is still being parsed (pipelines.chunks)
PREPARE_MIN_BYTES = 4 << 20  # from ~20k rows up the grid raster pays off (geodata.areas.RASTER_MIN_POINTS)


@dataclass
class BatchSummary:
    batch_id: str
    source: str
    file: str
    profile: str
    rows_read: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0
    quarantined: int = 0
    skipped: bool = False
    reasons: dict[str, int] | None = None
    redactions: dict[str, int] | None = None
    unmapped: dict[str, int] | None = None  # source category code -> rows quarantined as unknown_category
    older: int = 0  # of unchanged: records the warehouse holds from a later export (their status went to history)
    unusable_points: int = 0  # loaded rows whose coordinates were unusable: placed by address or grid code instead
    other_outcomes: dict[str, int] | None = None  # outcome words the KPIs do not know -> loaded rows
    header_notes: tuple[str, ...] = ()  # the file's header against the profile (stage._header_notes)
    not_understood: dict[str, dict[str, int]] | None = None  # "header (field)" -> word -> rows quarantined
    flow: bool = False  # a flow log (流转记录): inserted = steps added to the status history

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.inserted + self.updated + self.unchanged + self.quarantined

    def line(self) -> str:
        if self.skipped:
            return f"{self.file}: already loaded in batch {self.batch_id}; nothing to do (use --force to reload)"
        ok = "ok" if self.reconciles else "DOES NOT RECONCILE"
        text = (f"{self.file}: read {self.rows_read:,} / inserted {self.inserted:,} / updated {self.updated:,} / "
                f"unchanged {self.unchanged:,} / linked {self.linked:,} / quarantined {self.quarantined:,}  [{ok}]")
        if self.older:
            text += (f"\n    {self.older:,} of unchanged: the warehouse holds a later export of them (this file was "
                     "taken earlier); their status here is kept in their status history at its own time")
        if self.other_outcomes:
            text += ("\n    outcomes 化解率 does not count as 化解 (if they mean it, map them in the profile's "
                     "[values.outcome]): " + _most_first(self.other_outcomes))
        if self.unusable_points:
            text += (f"\n    {self.unusable_points:,} loaded rows had coordinates that could not be used (zero, out of "
                     "range, outside the jurisdiction, not numbers): placed by their address or grid code, with no point")
        if self.flow:
            text += (f"\n    a flow log: {self.inserted:,} steps added to the cases' status history, {self.unchanged:,} "
                     "held already")
        for note in self.header_notes:
            text += f"\n    {note}"
        outside = (self.reasons or {}).get("outside_jurisdiction", 0)
        if self.rows_read and outside > self.rows_read / 2:
            text += (f"\n    WARNING: {outside:,} of {self.rows_read:,} rows lie outside this jurisdiction — is this "
                     "the county's file, and does the profile name its coordinate system?")
        if self.reasons:
            text += "\n    quarantine reasons: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items()))
        for column, words in (self.not_understood or {}).items():
            name = column.rsplit(" (", 1)[-1].rstrip(")")
            text += (f"\n    {column}: values no table reads (quarantined; if they mean a product value, map them in "
                     f"the profile's [values.{name}]): " + _most_first(words))
        if self.unmapped:
            codes = sorted(self.unmapped.items(), key=lambda kv: (-kv[1], kv[0]))
            text += (f"\n    unmapped {self.profile} codes ({len(codes)}, quarantined as unknown_category): "
                     + ", ".join(f"{k} {v:,}" for k, v in codes))
        redacted = {k: v for k, v in (self.redactions or {}).items() if v and k != "rows_changed"}
        if redacted:
            text += "\n    redacted: " + ", ".join(f"{k} {v:,}" for k, v in sorted(redacted.items()))
        return text


def _most_first(counts: dict[str, int], shown: int = 10) -> str:
    """'调解成功 12, 已化解 3 … (14 in all)': words with their row counts, most first."""
    words = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return (", ".join(f"{k} {v:,}" for k, v in words[:shown])
            + (f" … ({len(words)} in all)" if len(words) > shown else ""))


def area_set_from_files(settings: Settings) -> AreaSet:
    """The configured boundary files (geo.areas_dir), or the bundled demo county when none are set."""
    return load_area_set(settings.areas_dir) if settings.areas_dir else demo_area_set()


def area_set_for(settings: Settings) -> AreaSet:
    """The boundaries events are placed in: the latest vintage loaded with `onemap geodata load`, if any;
    otherwise the configured files (which `onemap build` then stores as the first vintage)."""
    from pipelines.areas_load import read_area_set

    if settings.warehouse_path.is_file():
        con = connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
        try:
            if con.execute("SELECT count(*) FROM meta.area_vintages").fetchall()[0][0]:
                return read_area_set(con)
        except duckdb.CatalogException:
            pass
        finally:
            con.close()
    return area_set_from_files(settings)


def _loads_of(con, sha: str, profile: str) -> list[tuple[str]]:
    """The earlier loads (batch ids, oldest first) of a file with these bytes under this profile: a file loaded
    before is skipped unless --force."""
    return con.execute("SELECT batch_id FROM meta.batches WHERE sha256 = ? AND profile = ? ORDER BY loaded_at",
                       [sha, profile]).fetchall()


def keep_raw_copy(settings: Settings, source: str, path: Path, sha: str) -> Path:
    """The export as received, kept immutable under ``raw/<source>/``. It holds callers' names and phone numbers as
    exported, so it is the owner's only: read-only to the service account, in folders no one else can enter (the
    secrets are kept the same way)."""
    target = settings.raw_dir / source / f"{sha[:16]}_{path.name}"
    for folder in (settings.raw_dir, target.parent):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    if not target.exists():  # written under a temporary name and renamed: a killed load leaves no half copy
        part = target.with_name(target.name + ".part")
        part.unlink(missing_ok=True)  # left read-only by a load killed mid-copy
        shutil.copyfile(path, part)
        part.chmod(0o400)
        part.replace(target)
    else:
        target.chmod(0o400)  # a copy kept by an earlier version, readable by all
    return target


def ingest(settings: Settings, source: str, files: list[Path], profile_name: str | None = None,
           dry_run: bool = False, force: bool = False, progress: bool = True, taken_at: pd.Timestamp | None = None,
           sheet: str | None = None) -> list[BatchSummary]:
    if not profile_name and source not in DEFAULT_PROFILE:
        raise ProfileError(f"source {source!r} has no default profile: name one with --profile (the shipped ones "
                           "are listed in README, Input formats)")
    profile = load_profile(profile_name or DEFAULT_PROFILE[source])
    if sheet:  # the sheet of this load's workbooks, whatever the profile says
        profile = dataclasses.replace(profile, sheet=sheet)
    if profile.source != source:
        raise ProfileError(f"profile {profile.name!r} is for source {profile.source!r}, not {source!r}")
    areas = area_set_for(settings)
    preparing = None
    if sum(Path(f).stat().st_size for f in files if Path(f).is_file()) >= PREPARE_MIN_BYTES:
        # a large load: the grid index and gazetteer are built while the first file is hashed and read (both
        # mostly outside the GIL), not on the first chunk, which nothing else overlaps
        warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="areas")
        preparing = warmer.submit(areas.prepare)
        warmer.shutdown(wait=False)
    categories = CategoryMap.load(deployment=settings.category_mapping_path)
    if profile.kind == "records" and profile.category_system not in categories.systems() \
            and not profile.classify_free_text:
        raise ProfileError(f"profile {profile.name!r}: its category_system {profile.category_system!r} has no rows in "
                           f"the category mapping (systems: {', '.join(categories.systems())}), so every row would "
                           f"be quarantined as unknown_category: map its codes in {settings.category_mapping_path} "
                           "(README, Input formats)")
    key = settings.hmac_key() if profile.party_columns else b""
    # the load's time (each record's updated_at, which the incremental build reads). ``taken_at``: when the
    # exports were taken, if earlier (a backlog of old exports loaded now, or the demo's): their statuses were
    # observed then, and the status history and a reopening (重开) are dated so
    now = pd.Timestamp.now(tz=settings.timezone)
    if taken_at is not None and taken_at > now:
        raise ValueError(f"--taken-at {taken_at:%Y-%m-%d %H:%M} is in the future: an export cannot be taken later "
                         "than it is loaded")
    summaries: list[BatchSummary] = []
    bar = tqdm(total=len(files), desc=f"ingest {source}", unit="file", disable=not progress)

    def context(path: Path, batch_id: str) -> StageContext:
        return StageContext(areas=areas, categories=categories, hmac_key=key, batch_id=batch_id,
                            source_file=path.name, now=now, h3_resolution=settings.h3_finest,
                            timezone=settings.timezone, taken_at=taken_at)

    def read_file(path: Path):
        return read_export(path, sheet=profile.sheet)

    def look_ups_ready() -> None:
        if preparing is not None:
            preparing.result()  # the look-ups were built while the file was hashed and read

    def stage_file(path: Path, batch_id: str):
        read = read_file(path)
        look_ups_ready()
        return read, stage_export(read.frame, profile, context(path, batch_id), malformed=read.malformed)

    def load_file(con, path: Path, batch_id: str, show: bool, feed: WholeFile | StreamedCsv) -> BatchSummary:
        """Stage and upsert one file, handed out by ``feed`` in chunks of CHUNK_ROWS rows (bounded work per
        step, a progress bar). Nothing is written before the whole file has been parsed: a streamed parse that
        fails raises StreamFailed first.

        A record id repeated in a later chunk is an update of the earlier row, so counts still reconcile."""
        look_ups_ready()
        ctx = context(path, batch_id)
        total = {"inserted": 0, "updated": 0, "unchanged": 0, "older": 0, "unusable_points": 0}
        reasons, redactions, unmapped, quarantined = Counter(), Counter(), Counter(), 0
        outcomes, notes, words = Counter(), [], {}
        rows = tqdm(total=feed.total, desc=path.name, unit="row", disable=not show, leave=False)

        def stage_next():
            got = feed.next_frame()
            if got is None:
                return None
            part, malformed = got
            return part, stage_export(part, profile, ctx, malformed=malformed)

        # the next chunk is staged (pandas/numpy, mostly holding the GIL) while DuckDB writes this one
        # (DuckDB releases the GIL), so the two cores work at once; chunks still load in file order
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        # meanwhile DuckDB gets one thread: the other core is staging, and a 200k-row insert into the
        # compressed table takes 1.2 CPU-s on one thread against 1.5 on two (measured)
        con.execute("SET threads = 1")
        try:
            pending = pool.submit(stage_next)
            while (got := pending.result()) is not None:
                part, staged = got
                pending = pool.submit(stage_next)
                rows.total = feed.rows_read()  # parsed to the end without a problem before anything is written
                quarantined += _load_chunk(con, staged, batch_id, path, total, reasons, redactions, unmapped,
                                           outcomes)
                notes.extend(n for n in staged.header_notes if n not in notes)  # alike for every chunk of a file
                for column, counts in staged.not_understood.items():
                    words.setdefault(column, Counter()).update(counts)
                rows.update(len(part))
            rows_read = feed.rows_read()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            con.execute("RESET threads")
            rows.close()
        linked = link_matters(con, batch_id)
        return BatchSummary(batch_id, source, path.name, profile.name, rows_read, linked=linked,
                            quarantined=quarantined, reasons=dict(reasons), redactions=dict(redactions),
                            unmapped=dict(unmapped), other_outcomes=dict(outcomes), header_notes=tuple(notes),
                            not_understood={k: dict(v) for k, v in words.items()}, **total)

    def flow_file(con, path: Path, batch_id: str, read, write: bool = True) -> BatchSummary:
        """A flow log (profile kind "flow"): its steps into the status history (pipelines.flow)."""
        look_ups_ready()
        ctx = context(path, batch_id)
        staged = stage_flow(read.frame, profile, ctx)
        counts = load_flow(con, staged, profile, ctx, write=write) if con is not None else {  # no cases yet
            "inserted": 0, "unchanged": 0, "rejects": pd.concat(
                [staged.rejects, pd.DataFrame({"reason": ["unknown_event"] * len(staged.steps)})], ignore_index=True)}
        rejects = with_malformed(counts.pop("rejects"), read.malformed, read.frame, profile, ctx)
        if write:
            quarantine(con, rejects)
        return BatchSummary(batch_id, source, path.name, profile.name, read.rows_read, inserted=counts["inserted"],
                            unchanged=counts["unchanged"], quarantined=len(rejects),
                            reasons=rejects["reason"].value_counts().to_dict(), flow=True)

    def _load_chunk(con, staged, batch_id: str, path: Path, total, reasons, redactions, unmapped, outcomes) -> int:
        """Classify, upsert and quarantine one staged chunk; returns the rows quarantined."""
        staged.events, unclassified = classify_pending(
            con, staged.events, {"batch_id": batch_id, "source": source, "source_file": path.name})
        if len(unclassified):
            staged.rejects = pd.concat([staged.rejects, unclassified], ignore_index=True)
        for k, v in upsert_events(con, staged.events, taken_at).items():
            total[k] += v
        quarantine(con, staged.rejects)
        reasons.update(staged.rejects["reason"].value_counts().to_dict())
        redactions.update(staged.redactions)
        unmapped.update(staged.unmapped or {})
        outcomes.update(staged.other_outcomes or {})
        total["unusable_points"] += staged.unusable_points
        return len(staged.rejects)

    if dry_run:  # against the warehouse as it is (read only): what the load would insert, update or skip
        con = (connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
               if settings.warehouse_path.is_file() else None)
        try:
            for path in map(Path, files):
                previous = _loads_of(con, file_sha256(path), profile.name) if con else []
                if previous and not force:
                    summaries.append(BatchSummary(previous[-1][0], source, path.name, profile.name, 0, skipped=True))
                    bar.update()
                    continue
                if profile.kind == "flow":
                    summaries.append(dataclasses.replace(
                        flow_file(con, path, "dry-run", read_file(path), write=False), batch_id="dry-run"))
                    bar.update()
                    continue
                read, staged = stage_file(path, "dry-run")
                counts = dry_run_counts(con, staged.events, taken_at) if con else {"inserted": len(staged.events)}
                summaries.append(BatchSummary(
                    "dry-run", source, path.name, profile.name, read.rows_read, quarantined=len(staged.rejects),
                    reasons=staged.rejects["reason"].value_counts().to_dict(), redactions=staged.redactions,
                    unmapped=staged.unmapped, unusable_points=staged.unusable_points,
                    other_outcomes=staged.other_outcomes, header_notes=staged.header_notes,
                    not_understood=staged.not_understood, **counts))
                bar.update()
        finally:
            if con is not None:
                con.close()
        bar.close()
        return summaries

    # a deployment's own profile file, so that later reads of its rejects (loaded_since) find the same mapping
    own_profile = (str(profile.path.resolve()) if profile.path is not None
                   and profile.path.resolve().parent != PROFILE_DIR else None)
    snapshot = undo.snapshot_path(settings, now)  # the warehouse this load replaces, kept for `onemap undo`
    state: dict = {}  # the builds and boundary vintages the published warehouse holds (onemap.undo.keep)

    def note_undo() -> None:
        undo.keep(settings, snapshot, now, source, [
            {"batch_id": s.batch_id, "file": s.file, "profile": s.profile, "rows_read": s.rows_read,
             "inserted": s.inserted, "updated": s.updated, "unchanged": s.unchanged, "quarantined": s.quarantined}
            for s in summaries if not s.skipped], state)

    with write_session(settings.warehouse_path, settings.timezone, keep_previous=snapshot,
                       on_publish=note_undo) as con:
        scrub_quarantine(con)  # rows an earlier version quarantined with their free text as read
        for path in map(Path, files):
            # the file is parsed while it is hashed (both mostly outside the GIL); a file loaded before is
            # then skipped, its parse wasted (and a read error ignored: nothing of it is loaded). A large CSV is
            # parsed chunk by chunk, and staging starts on its first chunk while the rest is parsed.
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="read") as io:
                streamed = profile.kind == "records" and path.suffix.lower() in STREAMED_SUFFIXES \
                    and path.is_file() and path.stat().st_size >= STREAM_MIN_BYTES
                reading = StreamedCsv(path, CHUNK_ROWS, io) if streamed else io.submit(read_file, path)
                sha = file_sha256(path)
                previous = _loads_of(con, sha, profile.name)
                if previous and not force:
                    if streamed:
                        reading.settle()
                    else:
                        reading.exception()
                    summaries.append(BatchSummary(previous[-1][0], source, path.name, profile.name, 0,
                                                  skipped=True))
                    bar.update()
                    continue
                batch_id = f"{source}-{sha[:12]}" + (f"-{len(previous)}" if previous else "")
                # the raw copy is written by the kernel (sendfile) while the file is read and staged
                copying = io.submit(keep_raw_copy, settings, source, path, sha)
                try:
                    s = (flow_file(con, path, batch_id, reading.result()) if profile.kind == "flow" else
                         load_file(con, path, batch_id, progress,
                                   reading if streamed else WholeFile(reading.result(), CHUNK_ROWS)))
                except StreamFailed:  # nothing written yet: read it whole (good rows kept, problems named)
                    s = load_file(con, path, batch_id, progress, WholeFile(read_file(path), CHUNK_ROWS))
                copying.result()
            con.execute("INSERT INTO meta.batches (batch_id, source, source_file, sha256, profile, loaded_at, "
                        "rows_read, inserted, updated, unchanged, linked, quarantined, profile_file, taken_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [batch_id, source, path.name, sha, profile.name, now, s.rows_read, s.inserted, s.updated,
                         s.unchanged, s.linked, s.quarantined, own_profile, taken_at])
            summaries.append(s)
            bar.update()
        touched = [r[0] for r in con.execute(
            "SELECT DISTINCT CAST(reported_at AS DATE) FROM core.events WHERE updated_at = ?", [now]).fetchall()]
        if con.execute("SELECT count(*) FROM hex.cell_day").fetchall()[0][0]:  # keep built aggregates current
            refresh_aggregates(con, settings, touched)
        state["builds"] = con.execute("SELECT count(*) FROM meta.builds").fetchall()[0][0]
        state["batches"] = con.execute("SELECT count(*) FROM meta.batches").fetchall()[0][0]
        state["vintages"] = [r[0] for r in con.execute("SELECT vintage FROM meta.area_vintages").fetchall()]
    bar.close()
    return summaries
