"""`onemap build`: core.events -> hex.* and area aggregates (and the area dimension), then publish."""
from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from onemap.h3sql import h3_parent_sql
from onemap.metrics import CLOSED
from onemap.settings import Settings
from onemap.warehouse import registered, write_session
from pipelines.aggregate import refresh_aggregates
from pipelines.ingest import area_set_for
from pipelines.load import scrub_quarantine


def build(settings: Settings, as_of: pd.Timestamp | None = None, full: bool = False) -> dict:
    """Aggregate and score, then publish. Incremental unless ``full``: only the days that loads since the
    last build touched are re-aggregated (a consistency check falls back to a full rebuild).

    Returns counts (``events``, ``cell_day_rows``, ``days_rebuilt``: -1 = all) and ``seconds``: the wall
    time of each step, in order (the last one is the contract checks and the atomic publish)."""
    as_of = as_of or pd.Timestamp.now(tz=settings.timezone)
    areas = area_set_for(settings)
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(step: str) -> None:
        now = time.perf_counter()
        seconds[step] = now - clock[0]
        clock[0] = now

    with write_session(settings.warehouse_path, settings.timezone) as con:
        done("open a private copy")
        scrub_quarantine(con)  # rows an earlier version quarantined with their free text as read
        _ensure_areas(con, areas, settings, as_of)
        last = con.execute("SELECT max(built_at) FROM meta.builds").fetchall()[0][0]
        days = None if (full or last is None) else [r[0] for r in con.execute(
            "SELECT DISTINCT CAST(reported_at AS DATE) FROM core.events WHERE updated_at > ?", [last]).fetchall()]
        days = refresh_aggregates(con, settings, days)
        build_cell_homes(con, settings)
        done("aggregates")
        score_hotspots(con, areas, settings, as_of)
        done("hot spots")
        score_outliers(con, as_of)
        done("outliers")
        score_alerts(con, areas)
        done("alerts")
        score_repeat_places(con, areas, as_of)
        done("repeat places")
        build_marts(con, as_of)
        n = con.execute("SELECT count(*) FROM core.events").fetchall()[0][0]
        con.execute("INSERT INTO meta.builds VALUES (?, now(), ?, ?, ?)",
                    [uuid.uuid4().hex[:12], as_of, n, _version()])
        cells = con.execute("SELECT count(*) FROM hex.cell_day").fetchall()[0][0]
        done("marts")
    done("checks + publish")
    return {"events": n, "cell_day_rows": cells, "days_rebuilt": -1 if days is None else len(days),
            "seconds": seconds}


ALERT_RESOLUTION = 8
ALERT_ALPHA = 0.05
ALERT_DAYS_BACK = 14          # alerts are kept for windows ending on each of the last 14 days
ALERT_WINDOWS = (7, 1)        # a week and a day
RAMP_MONITOR_DAYS = 28        # slow build-ups: NB CUSUM over the last four weeks (needs 4 more weeks of history)
ALERT_SOURCE_MIN_DAYS = 98    # a source takes part in alerts once it has 14 weeks of data (4 of history before the
                              # oldest window scored, and the ramps' 8); a single-source warehouse always does
RAMP_KAPPA = 1.5              # the CUSUM looks for a 1.5-fold rise


def score_alerts(con, areas, resolution: int = ALERT_RESOLUTION, days_back: int = ALERT_DAYS_BACK) -> str | None:
    """"Unusual now": models.alerts.score_window for 7-day and 1-day windows ending on each recent day."""
    import json

    from geodata.h3cells import cells_covering
    from models.alerts import score_window
    from models.ramps import ramp_alerts

    # days as day numbers, categories as a categorical (codes from SQL, no string column crosses over) and rows
    # in cell order: the 28 model fits below then work on integers and cache-friendly lookups
    # a source whose data is younger than the model needs (a 12345 hotline loaded from last month) would be a
    # rise of its own size in every cell it covers: left out until it has ALERT_SOURCE_MIN_DAYS of history
    spans = con.execute("SELECT source, min(CAST(reported_at AS DATE)), max(CAST(reported_at AS DATE)) "
                        "FROM core.events GROUP BY 1").fetchall()
    oldest = min((first for _, first, _ in spans), default=None)
    last_day = max((end for _, _, end in spans), default=None)
    young = [src for src, first, _ in spans  # (never the oldest: a warehouse begun recently still has alerts)
             if first > oldest and (last_day - first).days < ALERT_SOURCE_MIN_DAYS]
    sources = f"AND source NOT IN ({', '.join(repr(s) for s in sorted(young))})" if young else ""
    categories = f"SELECT DISTINCT category_code FROM hex.cell_day WHERE resolution = $res {sources}"
    codes = [r[0] for r in con.execute(categories + " ORDER BY 1", {"res": resolution}).fetchall()]
    panel = con.execute(f"""
        SELECT cell, date_diff('day', DATE '1970-01-01', day) AS day, c.code AS category_code, sum(n)::INTEGER AS n
        FROM hex.cell_day
        JOIN (SELECT category_code, (row_number() OVER (ORDER BY category_code) - 1)::INTEGER AS code
              FROM ({categories})) c USING (category_code)
        WHERE resolution = $res {sources} GROUP BY ALL ORDER BY ALL""", {"res": resolution}).df()
    panel["category_code"] = pd.Categorical.from_codes(panel["category_code"].to_numpy(), categories=codes)
    if panel.empty:
        con.execute("DELETE FROM scores.alerts")
        con.execute("DELETE FROM meta.model_runs WHERE model = 'unusual_now'")
        return None
    last = pd.Timestamp(np.datetime64(int(panel["day"].max()), "D"))
    first = pd.Timestamp(np.datetime64(int(panel["day"].min()), "D"))
    span = ((last - pd.Timedelta(days=days_back - 1)).date(), last.date())
    _archive_alerts(con, span[0])
    study = cells_covering(areas.county.geometry.union_all(), resolution)
    run_id = uuid.uuid4().hex[:12]
    ends = [last - pd.Timedelta(days=back) for back in range(days_back)]
    windows = [(end, days) for end in ends for days in ALERT_WINDOWS
               if end - pd.Timedelta(days=days + 28) >= first]  # four weeks of history before the window, or none

    def scored(window: tuple[pd.Timestamp, int]) -> pd.DataFrame:
        end, days = window
        return score_window(panel, end.date(), window_days=days, k=1, alpha=ALERT_ALPHA, cells=study).assign(
            window_days=days)

    # the windows are independent and mostly NumPy (which releases the GIL): score them on every core
    with ThreadPoolExecutor(max_workers=min(len(windows), os.cpu_count() or 1) or 1) as pool:
        frames = [found for found in pool.map(scored, windows) if len(found)]
    if last - pd.Timedelta(days=RAMP_MONITOR_DAYS + 28) >= first:  # ramps still running on the last day
        ramps = ramp_alerts(panel, last.date(), RAMP_MONITOR_DAYS, k=1, alpha=ALERT_ALPHA, kappa=RAMP_KAPPA, cells=study)
        if len(ramps):
            run = pd.to_datetime(ramps["window_end"]) - pd.to_datetime(ramps["window_start"])
            frames.append(ramps.assign(window_days=run.dt.days + 1))
    alerts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(alerts):
        cells = alerts["cell"].map(lambda c: int(c, 16) if isinstance(c, str) else int(c)).astype("uint64")
        place = _alert_places(con, areas, cells.to_numpy(), resolution)
        frame = pd.DataFrame({
            "run_id": run_id, "kind": alerts["kind"], "resolution": resolution, "cell": cells.to_numpy(),
            "place": place, "window_days": alerts["window_days"].astype(int),
            "window_start": pd.to_datetime(alerts["window_start"]).dt.date,
            "window_end": pd.to_datetime(alerts["window_end"]).dt.date,
            "observed": alerts["observed"].astype(int), "expected": alerts["expected"].astype(float),
            "ratio": alerts["ratio"].astype(float), "score": alerts["score"].astype(float),
            "p_value": alerts["p_value"].astype(float), "q_value": alerts["q_value"].astype(float),
            "category_code": alerts["category_code"].where(alerts["category_code"].notna(), None),
            "n_cells": alerts["n_cells"].astype(int),
            "drivers": [json.dumps(d, ensure_ascii=False, default=float) for d in alerts["drivers"]],
            "sentence_zh": [f"【{p}】{t}" if p else t for p, t in zip(place, alerts["sentence_zh"], strict=True)],
            "family": alerts["family"],
        })
        _insert(con, "scores.alerts", frame)
    params = {"resolution": resolution, "alpha": ALERT_ALPHA, "windows": list(ALERT_WINDOWS), "days_back": days_back,
              "k": 1, "ramp_monitor_days": RAMP_MONITOR_DAYS, "ramp_kappa": RAMP_KAPPA,
              "span_from": f"{span[0]}", "span_to": f"{span[1]}", "sources_left_out": sorted(young)}
    con.execute("INSERT INTO meta.model_runs VALUES (?, 'unusual_now', ?, ?, now(), ?)",
                [run_id, _version(), json.dumps(params), len(alerts)])
    return run_id


def build_cell_homes(con, settings: Settings) -> None:
    """hex.cell_home: each cell's home village at every resolution (onemap.queries.cell_home_sql), so that naming
    alert cells and showing a town its share of the county's alerts and hot spots is a lookup."""
    from onemap.queries import cell_home_sql

    con.execute("DELETE FROM hex.cell_home")
    for res in settings.h3_resolutions:
        con.execute(f"INSERT INTO hex.cell_home SELECT {int(res)}, cell, town_code, village_code, n "
                    f"FROM ({cell_home_sql(res)})")


def _archive_alerts(con, span_from) -> None:
    """Keep the alerts of earlier builds whose windows end before this build's span (the weekly brief of a past
    week shows what was alerted then); this build recomputes everything from ``span_from`` on. An earlier
    run stays recorded while it owns kept alerts or covers days before the span (so "no alert that day" is
    told apart from "not scored"); a run wholly inside the new span is superseded."""
    con.execute("DELETE FROM scores.alerts WHERE window_end >= ?", [span_from])
    con.execute("""
        DELETE FROM meta.model_runs WHERE model = 'unusual_now'
          AND run_id NOT IN (SELECT DISTINCT run_id FROM scores.alerts)
          AND coalesce(CAST(json_extract_string(params, '$.span_from') AS DATE) >= $from, TRUE)""",
                {"from": span_from})


def build_marts(con, as_of: pd.Timestamp) -> None:
    """marts.town_week_kpis: each KPI of onemap.metrics (the one definition) per town and week."""
    from onemap.metrics import KPIS

    select = ", ".join(f"{k.sql} AS {k.key}" for k in KPIS)
    # the week of the local calendar day (the same Monday as truncating the zoned timestamp, at half the cost)
    con.execute("DELETE FROM marts.town_week_kpis")
    columns = ", ".join(k.key for k in KPIS)
    con.execute(f"INSERT INTO marts.town_week_kpis (town_code, week_start, as_of, {columns}) SELECT town_code, "
                f"CAST(date_trunc('week', CAST(reported_at AS DATE)) AS DATE) AS week_start, $as_of, {select} "
                f"FROM core.events WHERE town_code IS NOT NULL GROUP BY ALL", {"as_of": as_of})


KNOX_SAMPLE, KNOX_PERMUTATIONS = 8000, 199  # the near-repeat calibration's events and Monte Carlo permutations


def score_repeat_places(con, areas, as_of: pd.Timestamp) -> str:
    """一地多报: places within 50 m with >= 3 incidents in a window calibrated by the Knox near-repeat test
    (models.recent_repeats: the same definition a weekly brief applies at the end of its week)."""
    import json

    from models.recent_repeats import (
        REPEAT_DEFAULT_WINDOW,
        REPEAT_MIN_COUNT,
        REPEAT_RADIUS_M,
        label_places,
        places_as_of,
        recent_events,
    )
    from models.repeat_places import calibrate_near_repeat

    events = recent_events(con, as_of)
    con.execute("DELETE FROM scores.repeat_places")
    con.execute("DELETE FROM meta.model_runs WHERE model = 'repeat_places'")
    window, knox_note = REPEAT_DEFAULT_WINDOW, "default"
    if len(events) >= 50:
        # (8,000 events and 199 permutations: ~0.6 s; 4,000 and 49 missed a p of 0.005 on the demo — the test is
        # quadratic in the events, 20,000 take ~4 s)
        sample = events.sample(min(len(events), KNOX_SAMPLE), random_state=0)
        t = (pd.to_datetime(sample["occurred_at"]) - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds() / 86400
        cal = calibrate_near_repeat(sample["lng"].to_numpy(), sample["lat"].to_numpy(), t.to_numpy(),
                                    space_bands_m=(50, 100, 200), time_bands_days=(3, 7, 14, 28),
                                    n_perm=KNOX_PERMUTATIONS)
        if cal.window_days:
            window, knox_note = int(cal.window_days), "knox"
    places = places_as_of(con, as_of, window, events)
    run_id = uuid.uuid4().hex[:12]
    if len(places):
        names = pd.concat([areas.towns[["code", "name"]], areas.villages[["code", "name"]]]).set_index("code")["name"]
        frame = pd.DataFrame({
            "run_id": run_id, "place_id": places["place_id"].astype(int), "lng": places["lng"], "lat": places["lat"],
            "place": label_places(places, names.to_dict()), "grid_code": places["grid_code"],
            "n_events": places["n_events"].astype(int), "first_at": places["first_at"], "last_at": places["last_at"],
            "window_days": window, "radius_m": REPEAT_RADIUS_M, "top_category": places["top_category"],
            "categories": [json.dumps(c, ensure_ascii=False) for c in places["categories"]]})
        _insert(con, "scores.repeat_places", frame)
    params = {"min_count": REPEAT_MIN_COUNT, "radius_m": REPEAT_RADIUS_M, "window_days": window,
              "window_from": knox_note}
    con.execute("INSERT INTO meta.model_runs VALUES (?, 'repeat_places', ?, ?, now(), ?)",
                [run_id, _version(), json.dumps(params), len(places)])
    return run_id


def score_outliers(con, as_of: pd.Timestamp, resolution: int = 9) -> str:
    """IsolationForest over each res-9 cell's recent profile: a secondary signal (models.outliers)."""
    import json

    from models.outliers import CellProfileOutliers

    model = CellProfileOutliers()
    events = con.execute(
        f"SELECT {h3_parent_sql('h3_cell', resolution)} AS cell, CAST(reported_at AS DATE) AS day, category_code, "
        f"{CLOSED} AS closed FROM core.events "
        "WHERE h3_cell IS NOT NULL AND reported_at > $as_of - INTERVAL 16 WEEK AND reported_at <= $as_of",
        {"as_of": as_of}).df()
    scored = model.fit_score(events, as_of) if len(events) else pd.DataFrame({"outlier_score": []})
    scored = scored[scored["outlier_score"].notna()]  # too few cells to compare: no score
    run_id = uuid.uuid4().hex[:12]
    con.execute("DELETE FROM scores.outliers")
    con.execute("DELETE FROM meta.model_runs WHERE model = 'cell_profile_outliers'")
    if len(scored):
        frame = pd.DataFrame({"run_id": run_id, "resolution": resolution,
                              "cell": scored.index.to_numpy().astype("uint64"),
                              "outlier_score": scored["outlier_score"].to_numpy(), "signal": scored["signal"],
                              "growth": scored["growth"].to_numpy(),
                              "unresolved_share": scored["unresolved_share"].to_numpy(),
                              "n": scored["n"].to_numpy().astype("int64")})
        _insert(con, "scores.outliers", frame)
    params = {k: getattr(model, k) for k in ("recent_weeks", "baseline_weeks", "min_events", "n_estimators",
                                             "random_state")}
    con.execute("INSERT INTO meta.model_runs VALUES (?, 'cell_profile_outliers', ?, ?, now(), ?)",
                [run_id, _version(), json.dumps(params), len(scored)])
    return run_id


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    """Append a frame to a warehouse table (columns in the table's order)."""
    with registered(con, "frame_to_insert", frame):
        con.execute(f"INSERT INTO {table} SELECT * FROM frame_to_insert")


def _alert_places(con, areas, cells: np.ndarray, resolution: int) -> np.ndarray:
    """Each alert cell's 'town + village': the area the cell belongs to (``onemap.queries.cell_homes``, the rule
    that also decides which users see the alert), or, for a cell with no placed event in its disk, the
    area at its centre; None where neither is known."""
    import h3

    from onemap.queries import cell_places

    hexes = [format(int(c), "x") for c in cells]
    found = cell_places(con, hexes, resolution)
    place = np.array([found.get(h) or None for h in hexes], dtype=object)
    missing = np.flatnonzero(pd.isna(place))
    if len(missing):
        centres = [h3.cell_to_latlng(hexes[i]) for i in missing]
        place[missing], _ = _place_names(areas, [c[1] for c in centres], [c[0] for c in centres])
    return place


def _place_names(areas, lng, lat) -> tuple[np.ndarray, pd.DataFrame]:
    """'town + village' names at each point (None outside every grid), and the area codes found."""
    from geodata.areas import assign_areas

    codes = assign_areas(areas, lng=lng, lat=lat)
    names = pd.concat([areas.towns[["code", "name"]], areas.villages[["code", "name"]]]).set_index("code")["name"]
    place = (codes["town_code"].map(names).fillna("") + codes["village_code"].map(names).fillna("")).to_numpy()
    return np.where(place == "", None, place), codes


HOTSPOT_WEEKS = 26
HOTSPOT_RESOLUTIONS = (8, 9)


def score_hotspots(con, areas, settings: Settings, as_of: pd.Timestamp, weeks: int = HOTSPOT_WEEKS) -> str | None:
    """Gi* per weekly slice over the last ``weeks`` complete-or-current weeks, FDR, emerging classes.

    The study area is every H3 cell covering the jurisdiction (empty cells take part), so that Gi* does not
    overstate clustering. Writes scores.hotspots under a new run id recorded in meta.model_runs.
    """
    import json

    from models.hotspots import hotspots_of_weeks

    last = con.execute("SELECT max(day) FROM hex.cell_day").fetchall()[0][0]
    if last is None:
        return None
    end = pd.Timestamp(last)
    slice_end = end - pd.Timedelta(days=(end.weekday() + 1) % 7)  # last Sunday on or before the latest day
    if slice_end < end - pd.Timedelta(days=3):
        slice_end = end  # a week with most of its days present counts as the latest slice
    run_id = uuid.uuid4().hex[:12]
    time_step = settings.hotspot_time_step
    window = "cube" if time_step else "slice"
    params = {"weeks": weeks, "k": 1, "alpha": 0.05, "fdr": "slice", "slice_end": str(slice_end.date()),
              "time_step": time_step, "global_window": window}
    rows = 0
    county = areas.county.geometry.union_all()
    for res in HOTSPOT_RESOLUTIONS:
        out = hotspots_of_weeks(con, county, res, slice_end, weeks, time_step).reset_index()
        out = pd.DataFrame({
            "run_id": run_id, "resolution": res, "cell": out["cell"].astype("uint64"),
            "slice_end": slice_end.date(), "n_slices": weeks, "count": out["count"].astype("int64"),
            "z": out["z"].astype(float), "p": out["p"].astype(float), "significant": out["significant"].astype(bool),
            "spot": out["spot"].replace("", "none"), "mk_tau": out["mk_tau"], "mk_p": out["mk_p"],
            "trend": out["trend"], "pattern": out["pattern"], "pattern_zh": out["pattern_zh"]})
        _insert(con, "scores.hotspots", out)
        rows += len(out)
    con.execute("DELETE FROM scores.hotspots WHERE run_id <> ?", [run_id])
    con.execute("DELETE FROM meta.model_runs WHERE model = 'emerging_hotspots'")
    con.execute("INSERT INTO meta.model_runs VALUES (?, 'emerging_hotspots', ?, ?, now(), ?)",
                [run_id, _version(), json.dumps(params), rows])
    return run_id


def _ensure_areas(con, areas, settings: Settings, as_of: pd.Timestamp) -> None:
    """Store the configured boundary files as the first vintage when none was loaded explicitly."""
    from geodata.validate import validate_area_set
    from pipelines.areas_load import write_areas

    if con.execute("SELECT count(*) FROM meta.area_vintages").fetchall()[0][0]:
        return
    report = validate_area_set(areas, county_code=settings.county_code)
    write_areas(con, areas, report, areas.source or "bundled demo geography", None, as_of)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onemap")
    except PackageNotFoundError:
        return "dev"
