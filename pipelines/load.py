"""Upsert staged events into core.events, keep the status history, link cross-source matters.

All of it runs inside one ``onemap.warehouse.write_session``: the batch is published whole or not at all.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from onemap.contracts import CORE_EVENTS, REJECTS, closed_status
from onemap.warehouse import registered

# Linking the same matter across sources: a police incident and a grid report close in space and time
# with compatible categories. A grid worker reports from the spot within hours (GPS noise tens of
# metres). Measured on the 200k-event demo against the generator's truth: precision 0.955, recall 0.956
# (docs/analytics.md §8); wider thresholds gain little recall and lose precision in dense areas.
LINK_RADIUS_M = 40.0
LINK_WINDOW_H = 9.0
LINK_BY_VILLAGE = True
COMPATIBLE = {frozenset(p) for p in (("MD14", "MD06"), ("MD13", "MD06"), ("MD04", "MD0401"), ("MD10", "MD1001"))}


def categories_compatible(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same = a == b
    pair = np.array([frozenset((x, y)) in COMPATIBLE for x, y in zip(a, b, strict=True)], dtype=bool)
    return same | pair


def upsert_events(con, events: pd.DataFrame, taken_at: pd.Timestamp | None = None) -> dict[str, int]:
    """Insert new events, update changed ones, skip identical ones; append status history rows. ``taken_at``:
    when the export was taken, if not just now — its statuses were observed then (the status history and a
    reopening are dated by it), while ``updated_at`` stays the load time the incremental build reads."""
    with registered(con, "batch", _batch_table(events)):  # scanned in place, not copied into a temporary table
        return _upsert_batch(con, list(CORE_EVENTS.column_names), taken_at)


def _batch_table(events: pd.DataFrame):
    """The staged events in core.events' columns, as Arrow: DuckDB scans an Arrow table far faster than a pandas
    frame of Python objects."""
    import pyarrow as pa

    return pa.Table.from_pandas(events.reindex(columns=list(CORE_EVENTS.column_names)), preserve_index=False)


def _batch_kind(taken: bool) -> str:
    """What an upsert does with each record of the view ``batch``: insert, update, nothing ('same'), or 'older': the
    warehouse already holds a later export of the record (an old export loaded late, --taken-at), which it keeps;
    this export's status goes into the history at its own time. Without ``taken`` (an export observed as it is
    loaded) no earlier observation can be later, and the history is not read (a load of 1M new rows would
    otherwise look each chunk up in the growing history)."""
    seen = ("""(SELECT event_id, max(observed_at) AS last_seen FROM core.event_status_history
                 WHERE event_id IN (SELECT event_id FROM batch) GROUP BY event_id)""" if taken
            else "(SELECT NULL::VARCHAR AS event_id, NULL::TIMESTAMPTZ AS last_seen WHERE FALSE)")
    return f"""
        SELECT b.event_id,
               CASE WHEN e.event_id IS NULL THEN 'insert'
                    WHEN e.content_hash = b.content_hash THEN 'same'
                    WHEN coalesce(CAST($taken AS TIMESTAMPTZ), b.updated_at) < s.last_seen THEN 'older'
                    ELSE 'update' END AS kind,
               e.status AS old_status, b.status AS new_status, e.linked_event_id AS old_link,
               e.reopened_at AS old_reopened, e.closed_at AS old_closed, e.first_closed_at AS old_first_closed,
               coalesce(CAST($taken AS TIMESTAMPTZ), b.updated_at) AS observed_at, b.batch_id
        FROM batch b LEFT JOIN core.events e USING (event_id) LEFT JOIN {seen} s USING (event_id)"""


def _counts(kinds: dict[str, int]) -> dict[str, int]:
    """A batch's summary counts from its records' kinds (:func:`_batch_kind`); 'older' ones are unchanged records."""
    return {"inserted": kinds.get("insert", 0), "updated": kinds.get("update", 0),
            "unchanged": kinds.get("same", 0) + kinds.get("older", 0), "older": kinds.get("older", 0)}


def dry_run_counts(con, events: pd.DataFrame, taken_at: pd.Timestamp | None = None) -> dict[str, int]:
    """What :func:`upsert_events` would count for ``events``, writing nothing (``onemap ingest --dry-run``; a
    read-only connection will do)."""
    with registered(con, "batch", _batch_table(events)):
        return _counts(dict(con.execute(f"SELECT kind, count(*) FROM ({_batch_kind(taken_at is not None)}) GROUP BY kind",
                                        {"taken": taken_at}).fetchall()))


def _upsert_batch(con, cols: list[str], taken_at: pd.Timestamp | None = None) -> dict[str, int]:
    con.execute(f"CREATE OR REPLACE TEMP TABLE batch_kind AS {_batch_kind(taken_at is not None)}", {"taken": taken_at})
    counts = dict(con.execute("SELECT kind, count(*) FROM batch_kind GROUP BY kind").fetchall())
    # an older export's status, where it differs from the one in effect at its time (the stage a backlog of
    # that day reads)
    con.execute("""
        INSERT INTO core.event_status_history
        SELECT k.event_id, k.new_status, k.observed_at, k.batch_id FROM batch_kind k
        WHERE k.kind = 'older' AND k.new_status IS DISTINCT FROM (
            SELECT arg_max(h.status, h.observed_at) FROM core.event_status_history h
            WHERE h.event_id = k.event_id AND h.observed_at <= k.observed_at)""")
    # an older export showing closed a case that a later export (already loaded) shows open: the case was reopened
    # then, at the first later observation of it open — as it would have been found had the exports come in order
    con.execute(f"""
        UPDATE core.events e SET reopened_at = r.reopened, first_closed_at = CASE
                WHEN r.closed >= e.reported_at AND r.closed <= r.reopened THEN r.closed END
        FROM (SELECT k.event_id, b.closed_at AS closed, (
                     SELECT min(h.observed_at) FROM core.event_status_history h
                     WHERE h.event_id = k.event_id AND h.observed_at > k.observed_at
                       AND NOT {closed_status('h.status')}) AS reopened
              FROM batch_kind k JOIN batch b USING (event_id)
              WHERE k.kind = 'older' AND {closed_status('b.status')}) r
        WHERE e.event_id = r.event_id AND r.reopened IS NOT NULL
          AND (e.reopened_at IS NULL OR e.reopened_at > r.reopened)""")
    # a new event starts its history; an update adds a row when the status changed (and that status is
    # not already recorded for this batch: a record repeated in a later chunk of the same file)
    con.execute("""
        INSERT INTO core.event_status_history
        SELECT k.event_id, k.new_status, k.observed_at, k.batch_id
        FROM batch_kind k
        WHERE k.kind = 'insert'
           OR (k.kind = 'update' AND k.old_status IS DISTINCT FROM k.new_status
               AND NOT EXISTS (SELECT 1 FROM core.event_status_history h
                               WHERE h.event_id = k.event_id AND h.status = k.new_status
                                 AND h.batch_id = k.batch_id))""")
    col_list = ", ".join(cols)
    # an update keeps an existing cross-source link, and the first time a closed case was shown open again with
    # the close time it had until then (so that the case counts as closed between the two)
    reopening = f"k.old_reopened IS NULL AND {closed_status('k.old_status')} AND NOT {closed_status('b.status')}"
    kept = {"linked_event_id": "coalesce(b.linked_event_id, k.old_link)",
            "reopened_at": f"coalesce(k.old_reopened, CASE WHEN {reopening} THEN k.observed_at END)",
            # (not when the new export moves the report time past it: an earlier close would contradict it)
            "first_closed_at": "coalesce(CASE WHEN k.old_first_closed >= b.reported_at THEN k.old_first_closed END, "
                               f"CASE WHEN {reopening} AND k.old_closed >= b.reported_at THEN k.old_closed END)"}
    select = ", ".join(f"{kept[c]} AS {c}" if c in kept else f"b.{c}" for c in cols)
    # delete + insert rather than INSERT OR REPLACE: core.events carries no index (a primary-key index
    # makes bulk loads several times slower); uniqueness of event_id is a contract check instead
    con.execute("DELETE FROM core.events WHERE event_id IN (SELECT event_id FROM batch_kind WHERE kind = 'update')")
    con.execute(f"""
        INSERT INTO core.events ({col_list})
        SELECT {select} FROM batch b JOIN batch_kind k USING (event_id) WHERE k.kind IN ('insert', 'update')""")
    return _counts(counts)


def link_matters(con, batch_id: str) -> int:
    """Link this batch's unlinked events to unlinked events of the other source; returns pairs linked.

    Two passes: events with points match within LINK_RADIUS_M and LINK_WINDOW_H; events located only by
    address (village or grid precision) match inside the same village within LINK_WINDOW_H. Both need
    compatible categories and are one-to-one, closest first.
    """
    window = LINK_WINDOW_H * 3600
    # a pair needs both sources among the unlinked events in the batch's time span: when only one is there
    # (a weekly grid export with no police data yet), nothing is fetched into Python
    sources = con.execute("""
        WITH span AS (SELECT min(reported_at) AS lo, max(reported_at) AS hi FROM core.events
                      WHERE batch_id = $batch AND linked_event_id IS NULL)
        SELECT count(DISTINCT source) FROM core.events, span
        WHERE linked_event_id IS NULL AND source IN ('police', 'grid')
          AND reported_at BETWEEN lo - to_seconds($window) AND hi + to_seconds($window)""",
                          {"batch": batch_id, "window": window}).fetchall()[0][0]
    if sources < 2:
        return 0
    new = con.execute("""
        SELECT event_id, source, lng, lat, epoch(reported_at) AS t, category_code, village_code FROM core.events
        WHERE batch_id = ? AND linked_event_id IS NULL""", [batch_id]).df()
    if new.empty:
        return 0
    other = con.execute("""
        SELECT event_id, source, lng, lat, epoch(reported_at) AS t, category_code, village_code FROM core.events
        WHERE linked_event_id IS NULL AND epoch(reported_at) BETWEEN ? AND ? AND batch_id <> ?""",
                        [new["t"].min() - window, new["t"].max() + window, batch_id]).df()
    pool = pd.concat([new, other], ignore_index=True)
    police = pool[pool["source"] == "police"].reset_index(drop=True)
    grid = pool[pool["source"] == "grid"].reset_index(drop=True)
    if police.empty or grid.empty:
        return 0
    pi, gj, cost = _point_candidates(police, grid)
    pi2, gj2, cost2 = (_village_candidates(police, grid) if LINK_BY_VILLAGE
                       else (np.array([], dtype=int), np.array([], dtype=int), np.array([])))
    pi, gj, cost = np.concatenate([pi, pi2]), np.concatenate([gj, gj2]), np.concatenate([cost, cost2])
    # only pairs with a side in this batch: two older events of other loads that were left unlinked are not this
    # load's links (a hotline load counted three police-grid pairs of months before as its own)
    mine = set(new["event_id"])
    ours = police["event_id"].isin(mine).to_numpy()[pi] | grid["event_id"].isin(mine).to_numpy()[gj]
    pi, gj, cost = pi[ours], gj[ours], cost[ours]
    order = np.argsort(cost, kind="stable")
    used_p, used_g, links = set(), set(), []
    for i, j in zip(pi[order], gj[order], strict=True):  # greedy one-to-one, best pairs first
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        links.append((police["event_id"].iat[i], grid["event_id"].iat[j]))
    if not links:
        return 0
    frame = pd.DataFrame(links, columns=["a", "b"])
    both = pd.concat([frame, frame.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
    with registered(con, "new_links", both):
        con.execute("UPDATE core.events SET linked_event_id = l.b FROM new_links l WHERE core.events.event_id = l.a")
    return len(links)


def _point_candidates(police: pd.DataFrame, grid: pd.DataFrame):
    from scipy.spatial import cKDTree  # imported when there is something to link (a sixth of a second)

    p = police[police["lng"].notna()]
    g = grid[grid["lng"].notna()]
    empty = (np.array([], dtype=int), np.array([], dtype=int), np.array([]))
    if p.empty or g.empty:
        return empty
    lat0 = np.radians(float(pd.concat([p["lat"], g["lat"]]).mean()))

    def xyz(f: pd.DataFrame) -> np.ndarray:
        # metres east, metres north, and time scaled so that LINK_WINDOW_H equals LINK_RADIUS_M
        return np.column_stack([f["lng"] * 111_320 * np.cos(lat0), f["lat"] * 110_540,
                                f["t"] / 3600 * (LINK_RADIUS_M / LINK_WINDOW_H)])

    pxyz, gxyz = xyz(p), xyz(g)
    pairs = cKDTree(gxyz).query_ball_point(pxyz, r=LINK_RADIUS_M * np.sqrt(2))
    cand = [(i, j) for i, js in enumerate(pairs) for j in js]
    if not cand:
        return empty
    a, b = np.array(cand).T
    d_space = np.hypot(*(pxyz[a, :2] - gxyz[b, :2]).T)
    d_time_h = np.abs(p["t"].to_numpy()[a] - g["t"].to_numpy()[b]) / 3600
    ok = (d_space <= LINK_RADIUS_M) & (d_time_h <= LINK_WINDOW_H) & categories_compatible(
        p["category_code"].to_numpy()[a], g["category_code"].to_numpy()[b])
    cost = d_space / LINK_RADIUS_M + d_time_h / LINK_WINDOW_H
    return p.index.to_numpy()[a[ok]], g.index.to_numpy()[b[ok]], cost[ok]


def _village_candidates(police: pd.DataFrame, grid: pd.DataFrame):
    """Address-located events (no point) against the other source in the same village and time window."""
    p = police[police["village_code"].notna()].reset_index(names="pi")
    g = grid[grid["village_code"].notna()].reset_index(names="gj")
    no_point = p["lng"].isna()
    gp = g["lng"].isna()
    p, g = p[no_point], g
    g = pd.concat([g[~gp], g[gp]])  # grid side may or may not have a point
    if p.empty or g.empty:
        return np.array([], dtype=int), np.array([], dtype=int), np.array([])
    m = p.merge(g, on="village_code", suffixes=("_p", "_g"))
    d_time_h = (m["t_p"] - m["t_g"]).abs() / 3600
    ok = (d_time_h <= LINK_WINDOW_H).to_numpy() & categories_compatible(
        m["category_code_p"].to_numpy(), m["category_code_g"].to_numpy())
    m = m[ok]
    # the centre dispatches the grid worker after the police transfer (双派单), so an address-only police
    # record is matched only to a report that follows it; ambiguity is judged on the whole window
    after = (m["t_g"] >= m["t_p"]).to_numpy()
    # no distance is known, so a village is a coarse key: link only when the pair is unambiguous (the
    # police record has exactly one candidate report and that report exactly one candidate record)
    unique = (m.groupby("pi")["gj"].transform("size") == 1) & (m.groupby("gj")["pi"].transform("size") == 1)
    m = m[unique.to_numpy() & after]
    d_time_h = (m["t_p"] - m["t_g"]).abs() / 3600
    # rank after every point-based pair of the same time gap
    return m["pi"].to_numpy(), m["gj"].to_numpy(), 1.0 + (d_time_h / LINK_WINDOW_H).to_numpy()


def quarantine(con, rejects: pd.DataFrame) -> None:
    if rejects.empty:
        return
    with registered(con, "rejects_frame", rejects.reindex(columns=list(REJECTS.column_names))):
        con.execute("INSERT INTO staging.rejects SELECT * FROM rejects_frame")


def _profiles():
    """A reader of the profile a load used — its own file if it named one (``meta.batches.profile_file``), else the
    shipped profile of that name — each read once (a file's rejects can be tens of thousands); None for no name or
    a profile that no longer exists."""
    from pipelines.profiles import ProfileError, load_profile

    read: dict[tuple, object] = {}

    def named(name: str | None, file: str | None = None):
        if (name, file) not in read:
            found = None
            for candidate in (file, name):
                if candidate and found is None:
                    try:
                        found = load_profile(candidate)
                    except ProfileError:
                        pass
            read[(name, file)] = found
        return read[(name, file)]
    return named


def scrub_quarantine(con) -> int:
    """Bring quarantine rows written by a version before free text was redacted there up to today's rule: party
    and [drop] columns removed, the profile's summary and address text redacted (a whole malformed line
    redacted). A profile that no longer exists: every value is redacted. Runs at every load and build; costs
    one count when there is nothing to do. Returns the rows scrubbed."""
    import json

    from pipelines.redact import redact_text
    from pipelines.stage import FREE_TEXT_FIELDS

    old = con.execute("SELECT r.batch_id, r.source_row, r.raw, b.profile, b.profile_file FROM staging.rejects r "
                      "LEFT JOIN meta.batches b USING (batch_id) WHERE r.scrubbed IS NULL").fetchall()
    if not old:
        return 0
    profile_named = _profiles()
    fixed = []
    for batch_id, row, raw, name, file in old:
        profile = profile_named(name, file)
        values = json.loads(raw) if raw else {}
        if set(values) == {"line"} or profile is None:
            values = {k: redact_text(str(v)) for k, v in values.items()}
        else:
            found = profile.resolve_headers(list(values))
            gone = set(profile.party_columns) | set(profile.drop_columns)
            unmapped = set(values) - set(found.values()) - gone  # what events keep in ext, redacted
            text = {found[f] for f in FREE_TEXT_FIELDS if f in found} | unmapped
            values = {k: redact_text(str(v)) if k in text else v for k, v in values.items() if k not in gone}
        fixed.append((batch_id, row, json.dumps(values, ensure_ascii=False)))
    frame = pd.DataFrame(fixed, columns=["batch_id", "source_row", "raw"])
    with registered(con, "scrubbed_frame", frame):
        con.execute("UPDATE staging.rejects r SET raw = s.raw, scrubbed = TRUE FROM scrubbed_frame s "
                    "WHERE r.batch_id = s.batch_id AND r.source_row = s.source_row AND r.scrubbed IS NULL")
    return len(fixed)


def loaded_since(con, rejected: pd.DataFrame) -> pd.Series:
    """For quarantined rows (``onemap.quarantine.rejects``: batch_id, source, raw, loaded_at), the file whose
    load has since put the same record in the warehouse — a corrected row loaded again (`rejects --raw`, fixed in
    Excel, `ingest`), or a later export of it — else None: the row is still outstanding. Read from each row's
    record id under its profile's header; a row without one (a malformed line, a profile hashing its rows) stays
    outstanding."""
    import json

    if rejected.empty:
        return pd.Series([], dtype=object, index=rejected.index)
    batches = con.execute("SELECT * FROM meta.batches").df()  # (no profile_file in a warehouse from before it)
    profile_of = {b: (p, f if isinstance(f, str) else None) for b, p, f in zip(
        batches["batch_id"], batches["profile"], batches.get("profile_file", [None] * len(batches)), strict=True)}
    profile_named = _profiles()
    ids, flow = [], []
    for batch, source, raw in zip(rejected["batch_id"], rejected["source"], rejected["raw"], strict=True):
        values = json.loads(raw) if raw else {}
        profile = profile_named(*profile_of.get(batch, (None, None)))
        header = profile.resolve_headers(list(values)).get("source_record_id") if profile else None
        rid = str(values.get(header, "")).strip() if header else ""
        ids.append(f"{source}:{rid}" if rid else None)
        flow.append(profile is not None and profile.kind == "flow")
    frame = pd.DataFrame({"event_id": ids, "since": pd.to_datetime(rejected["loaded_at"], utc=True), "flow": flow},
                         index=rejected.index)
    # a case's row: its record loaded since; a flow log's step: a later flow log added steps of its case (the case
    # export alone does not load the step)
    flow_batches = pd.DataFrame({"batch_id": [b for b, (p, f) in profile_of.items()
                                              if (prof := profile_named(p, f)) is not None and prof.kind == "flow"]},
                                dtype=object)
    with registered(con, "rejected_ids", frame.reset_index(names="i")), registered(con, "flow_batches", flow_batches):
        found = dict(con.execute("""
            SELECT r.i, b.source_file FROM rejected_ids r JOIN core.events e USING (event_id)
            JOIN meta.batches b ON b.batch_id = e.batch_id
            WHERE NOT r.flow AND e.updated_at > r.since
            UNION ALL
            SELECT r.i, arg_max(b.source_file, b.loaded_at) FROM rejected_ids r
            JOIN core.event_status_history h USING (event_id)
            JOIN meta.batches b ON b.batch_id = h.batch_id SEMI JOIN flow_batches f ON f.batch_id = h.batch_id
            WHERE r.flow AND b.loaded_at > r.since GROUP BY r.i""").fetchall())
    return pd.Series([found.get(i) for i in rejected.index], index=rejected.index, dtype=object)
