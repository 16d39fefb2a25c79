"""Rolling-origin backtest of cell risk forecasts, scored with hit rate, PAI, PEI and the ceiling PAI.

For each origin ``t`` and model: a fresh copy of the model is fitted on the panel rows with
``week < t`` only, predicts the expected count of every study cell over ``[t, t + horizon)``, and the
forecast is scored against the observed counts of that window with :mod:`models.pai` at each area
fraction. Nothing at or after ``t`` is visible to the model.

Study area: the H3 cells whose centre lies in the study-area polygon, plus any cell holding an event of
the series (so every event counted in ``N`` lies in ``A``); ``A`` is the union of those cells.

Scored origins: only periods whose whole window is observed **and** whose ``min_history_days`` days
before are all observed (:func:`scorable_origins`), so a missing month is never scored and never read
as zeros by a baseline.

Entry point for the bench script and the ``onemap backtest`` CLI: :func:`run_backtest`.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from models.forecast import AllHistory, CellRiskForecaster, EWMAHistory, KDEBaseline, LastKWeeks
from models.pai import score_forecast
from models.panel import (
    cells_from_lonlat,
    day_coverage,
    events_to_panel,
    exposure_from_days,
    period_floor,
    study_area_cells,
)

__all__ = [
    "DATASETS",
    "warehouse_backtest",
    "BacktestResult",
    "dataset_study_cells",
    "default_models",
    "format_table",
    "load_events",
    "rolling_origin_backtest",
    "run_backtest",
    "scorable_origins",
]


# --------------------------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    """``per_origin``: one row per (origin, model, area_fraction); ``summary``: means over origins,
    one row per model with PAI/PEI/hit rate/ceiling at each fraction."""

    per_origin: pd.DataFrame
    summary: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def to_text(self, title: str | None = None) -> str:
        return format_table(self.summary, self.meta, title=title)


def scorable_origins(days: Iterable, period="7D", *, horizon: int = 1, min_history_days: int = 28
                     ) -> pd.DatetimeIndex:
    """Period starts ``t`` such that every day of ``[t, t + horizon periods)`` and every one of the
    ``min_history_days`` days before ``t`` is observed."""
    step = pd.Timedelta(period)
    days = pd.DatetimeIndex(days).normalize().unique().sort_values()
    if days.empty:
        return pd.DatetimeIndex([])
    have = set(days)
    starts = pd.date_range(period_floor([days.min()], step)[0], days.max(), freq=step)
    out = []
    for t in starts:
        span = pd.date_range(t - pd.Timedelta(days=min_history_days), t + horizon * step - pd.Timedelta("1ns"),
                             freq="D")
        # a sub-daily period is observed if its calendar day is
        need = span.normalize().unique()
        if all(d in have for d in need):
            out.append(t)
    return pd.DatetimeIndex(out)


def _window_counts(panel: pd.DataFrame, cells: np.ndarray, start, end) -> np.ndarray:
    w = pd.DatetimeIndex(panel["week"])
    m = (w >= start) & (w < end)
    sub = panel.loc[np.asarray(m)]
    s = sub.groupby("cell")["n"].sum()
    return s.reindex(cells, fill_value=0).to_numpy(dtype=float)


def rolling_origin_backtest(events_or_panel: pd.DataFrame, study_cells, resolution: int, origins,
                            models: Mapping[str, object], area_fractions=(0.01, 0.05), *,
                            period="7D", horizon: int = 1, time_col: str | None = None,
                            category_col: str | None = None, open_col: str | None = None,
                            exposure: pd.Series | None = None, tie_break: str = "random", seed: int = 0,
                            refit_every: int = 1, verbose: bool = False) -> BacktestResult:
    """Rolling-origin backtest.

    ``events_or_panel``: either point events (columns ``lon``, ``lat`` and ``time_col``) or an already
    built panel (``cell``, ``week``, ``n`` ...) at ``resolution``. ``study_cells``: uint64 H3 cells of the
    study area at ``resolution`` (centre in the polygon); the universe is these plus every event cell.
    ``exposure``: observed fraction per period (derived from the event days if events are given and it
    is None). Ties at the coverage boundary are broken at random with a key drawn from
    ``(seed, origin)``, so reruns give identical figures. ``refit_every=r`` refits each model at every
    r-th origin and reuses that fit for the next r-1 origins (it still only saw data before its own
    fit origin; predictions always use all data before the origin being forecast). With ``horizon`` > 1
    give the models the same ``horizon_weeks`` for calibrated counts (the ranking does not depend on it).
    The universe (and so ``A``) is fixed for the whole run and the same for every model and the ceiling;
    a model only ever sees the cells' ids and their history before the origin."""
    step = pd.Timedelta(period)
    if {"cell", "week", "n"} <= set(events_or_panel.columns):
        panel = events_or_panel
    else:
        if time_col is None:
            raise ValueError("time_col is required with point events")
        panel = events_to_panel(events_or_panel, resolution, time_col=time_col, period=period,
                                category_col=category_col, open_col=open_col)
        if exposure is None:
            exposure = exposure_from_days(day_coverage(events_or_panel[time_col]), step)
    study_cells = np.asarray(study_cells, dtype=np.uint64)
    universe = np.union1d(study_cells, panel["cell"].to_numpy(dtype=np.uint64))
    rows = []
    fitted: dict[str, object] = {}
    for i, origin in enumerate(pd.DatetimeIndex(origins)):
        hist = panel.loc[np.asarray(pd.DatetimeIndex(panel["week"]) < origin)]
        y = _window_counts(panel, universe, origin, origin + horizon * step)
        for name, model in models.items():
            t0 = time.perf_counter()
            if i % max(int(refit_every), 1) == 0 or name not in fitted:
                fitted[name] = clone(model).fit(hist, cells=universe, exposure=exposure, origin=origin)
            m = fitted[name]
            s = m.predict(hist, origin, cells=universe, exposure=exposure)
            secs = time.perf_counter() - t0
            s = s.reindex(universe, fill_value=0.0).to_numpy(dtype=float)
            for f in area_fractions:
                r = score_forecast(s, y, 1.0, None, f, tie_break=tie_break, seed=[seed, origin.toordinal(),
                                                                                   int(origin.hour)])
                rows.append({"origin": origin, "model": name, "area_fraction": f, "k": r.k, "N": r.N, "n": r.n,
                             "n_star": r.n_star, "hit_rate": r.hit_rate, "pai": r.pai, "pei": r.pei,
                             "ceiling_pai": r.ceiling_pai, "seconds": secs})
            if verbose:
                print(f"  {origin:%Y-%m-%d %H:%M} {name}: {secs:.1f}s", flush=True)
    per = pd.DataFrame(rows)
    meta = {"resolution": resolution, "n_cells": int(universe.size), "n_study_cells": int(study_cells.size),
            "origins": [o.strftime("%Y-%m-%d %H:%M").removesuffix(" 00:00") for o in pd.DatetimeIndex(origins)],
            "period": str(period), "horizon": horizon, "tie_break": tie_break, "seed": seed,
            "events_per_period": float(per["N"].mean()) if len(per) else float("nan")}
    return BacktestResult(per, summarise(per, list(models)), meta)


def summarise(per: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Mean over origins per model: PAI, PEI (mean of the per-origin n/n*), hit rate, ceiling PAI per
    area fraction, and the mean fit+predict seconds."""
    if per.empty:
        return pd.DataFrame()
    g = per.groupby(["model", "area_fraction"])[["pai", "pei", "hit_rate", "ceiling_pai"]].mean().unstack()
    g.columns = [f"{m}@{f:g}" for m, f in g.columns]
    g["seconds"] = per.groupby("model")["seconds"].mean()   # fit + predict per origin
    g["origins"] = per.groupby("model")["origin"].nunique()
    if order:
        g = g.reindex([m for m in order if m in g.index])
    return g


def _pct(f: float) -> str:
    return f"{f * 100:g}%"


def format_table(summary: pd.DataFrame, meta: Mapping | None = None, title: str | None = None) -> str:
    """Plain-text table: model, PAI/PEI at each fraction, hit rate at each fraction and the ceiling PAI,
    always together."""
    fracs = sorted({float(c.split("@")[1]) for c in summary.columns if "@" in c})
    head = ["model"]
    for f in fracs:
        head += [f"PAI@{_pct(f)}", f"PEI@{_pct(f)}"]
    head += [f"HR@{_pct(f)}" for f in fracs] + [f"ceil@{_pct(f)}" for f in fracs] + ["s/origin"]
    lines = []
    for m, r in summary.iterrows():
        cells = [str(m)]
        for f in fracs:
            cells += [f"{r[f'pai@{f:g}']:.2f}", f"{r[f'pei@{f:g}']:.3f}"]
        cells += [f"{r[f'hit_rate@{f:g}']:.3f}" for f in fracs]
        cells += [f"{r[f'ceiling_pai@{f:g}']:.2f}" for f in fracs]
        cells += [f"{r['seconds']:.1f}"]
        lines.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = []
    if title:
        out.append(title)
    if meta:
        orig = meta.get("origins", [])
        out.append(f"res {meta.get('resolution')}, {meta.get('n_cells')} cells in A "
                   f"({meta.get('n_study_cells')} with centre in the study polygon), period {meta.get('period')}, "
                   f"horizon {meta.get('horizon')}, ~{meta.get('events_per_period', float('nan')):.0f} events "
                   f"per scored window; {len(orig)} origins: {', '.join(orig) if len(orig) <= 8 else orig[0] + ' .. ' + orig[-1]}")
        out.append("PAI/PEI/hit rate: means over origins (PEI = mean per-origin n/n*); ceiling = oracle PAI; "
                   f"ties: {meta.get('tie_break')} (seed {meta.get('seed')} + origin)")
    out.append(fmt.format(*head))
    out.append(fmt.format(*["-" * w for w in widths]))
    out += [fmt.format(*c) for c in lines]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# datasets (public data in ../shared/data) and the single entry point
# --------------------------------------------------------------------------------------------------
def _shared_data_dir() -> Path:
    env = os.environ.get("ONEMAP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    file: str
    time_col: str
    description: str
    lon_col: str = "lon"
    lat_col: str = "lat"
    filter_col: str | None = None
    filter_values: tuple = ()
    category_col: str | None = None
    study_polygons: str | None = None     # file of study-area polygons
    bbox: tuple | None = None              # (min_lon, min_lat, max_lon, max_lat) filter
    period: str = "7D"
    min_history_days: int = 28
    gap_hours: int | None = None          # detect sub-daily outages (dense time-stamped streams)
    lags: tuple = (1, 2, 4, 8, 13, 26, 52)
    first_origin: str | None = None
    origin_every: int = 1
    refit_every: int = 1                  # default refit cadence of run_backtest (1 = every origin)


DATASETS: dict[str, DatasetSpec] = {
    "portland-cfs": DatasetSpec(
        "portland-cfs", "portland_nij_cfs_2016_aug_sep_nov.parquet", "occ_date",
        "Portland NIJ all calls for service, Aug/Sep/Nov 2016 (October missing), weekly (Mon-Sun)",
        category_col="call_group", study_polygons="portland_police_districts_nij.parquet"),
    "portland-disorder": DatasetSpec(
        "portland-disorder", "portland_nij_cfs_2016_aug_sep_nov.parquet", "occ_date",
        "Portland NIJ calls, call_group == DISORDER, Aug/Sep/Nov 2016, weekly",
        filter_col="call_group", filter_values=("DISORDER",), category_col="final_case_type",
        study_polygons="portland_police_districts_nij.parquet"),
    "portland-burglary-mvt": DatasetSpec(
        "portland-burglary-mvt", "portland_nij_burglary_mvt_2012_2017.parquet", "occ_date",
        "Portland NIJ burglary + motor-vehicle-theft calls 2012-03..2017-05 (~70/week), weekly; 64 full "
        "weeks 2016-03-07..2017-05-22 scored",
        filter_col="category", filter_values=("BURGLARY", "MOTOR VEHICLE THEFT"), category_col="category",
        study_polygons="portland_police_districts_nij.parquet", first_origin="2016-03-07"),
    "portland-burglary": DatasetSpec(
        "portland-burglary", "portland_nij_burglary_mvt_2012_2017.parquet", "occ_date",
        "Portland NIJ burglary calls 2012-03..2017-05 (~19/week), weekly; 64 full weeks "
        "2016-03-07..2017-05-22 scored",
        filter_col="category", filter_values=("BURGLARY",), category_col="case_desc_class",
        study_polygons="portland_police_districts_nij.parquet", first_origin="2016-03-07"),
    "milwaukee-cfs": DatasetSpec(
        "milwaukee-cfs", "milwaukee_pd_calls_for_service_2018.parquet", "time",
        "Milwaukee PD calls for service 2018-05-01..05-21, DAILY (3 weeks of data cannot support a weekly "
        "horizon with 28 days of history); 7 days of history required",
        lon_col="longitude", lat_col="latitude", category_col="nature",
        bbox=(-88.1, 42.8, -87.8, 43.2), period="1D", min_history_days=7, lags=(1, 2, 3, 7, 14),
        gap_hours=6),
}


def default_models(spec: DatasetSpec, resolution: int) -> dict[str, object]:
    """The forecaster and the baselines that are always shown next to it."""
    period = spec.period
    # KDE bandwidth about one cell spacing of the resolution (res 9 ~ 200 m, res 10 ~ 75 m)
    bw = {7: 1200.0, 8: 500.0, 9: 200.0, 10: 75.0, 11: 30.0}.get(resolution, 200.0)
    long_history = spec.first_origin is not None        # years of history: long-memory baselines too
    k = 4 if period == "7D" else 7
    kde_window = 52 if long_history else k
    models = {
        "forecaster": CellRiskForecaster(lags=spec.lags, period=period),
        f"last-{k}": LastKWeeks(k=k, period=period),
        "all-history": AllHistory(period=period),
        f"kde-{bw:g}m-{kde_window}": KDEBaseline(bandwidth_m=bw, window=kde_window, period=period),
    }
    if long_history:
        models["ewma-26"] = EWMAHistory(halflife=26, period=period)
    return models


def load_events(spec: DatasetSpec, data_dir: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """Load and clean a dataset's events; returns (events with lon/lat/time, notes)."""
    data_dir = Path(data_dir) if data_dir is not None else _shared_data_dir()
    df = pd.read_parquet(data_dir / spec.file)
    notes = {"rows_read": len(df)}
    if spec.filter_col:
        df = df[df[spec.filter_col].astype("string").isin(spec.filter_values)]
        notes["rows_after_filter"] = len(df)
    df = df.rename(columns={spec.lon_col: "lon", spec.lat_col: "lat"})
    ok = df["lon"].notna() & df["lat"].notna() & df[spec.time_col].notna()
    notes["rows_without_coordinates_or_time"] = int((~ok).sum())
    df = df[ok]
    if spec.bbox is not None:
        x0, y0, x1, y1 = spec.bbox
        inb = df["lon"].between(x0, x1) & df["lat"].between(y0, y1)
        notes["rows_outside_bbox"] = int((~inb).sum())
        df = df[inb]
    return df.reset_index(drop=True), notes


def dataset_study_cells(spec: DatasetSpec, events: pd.DataFrame, resolution: int, data_dir: Path | None):
    """(cells, note): the study-area cells of a dataset - centre in its polygons file, or (Milwaukee, no
    boundary file in shared/data) in the convex hull of its bbox-filtered events."""
    data_dir = Path(data_dir) if data_dir is not None else _shared_data_dir()
    if spec.study_polygons:
        import geopandas as gpd

        polys = gpd.read_parquet(data_dir / spec.study_polygons)
        return study_area_cells(polys, resolution), f"cells with centre in {spec.study_polygons} (to EPSG:4326)"
    # no boundary file: the convex hull of the events inside the bbox stands in for the city outline
    import shapely

    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([events["lon"], events["lat"]])))
    return study_area_cells(hull, resolution), "cells with centre in the convex hull of the bbox-filtered events"


def run_backtest(dataset_name: str, resolution: int, *, models: Mapping[str, object] | None = None,
                 origins=None, area_fractions=(0.01, 0.05), max_origins: int | None = None,
                 data_dir: str | Path | None = None, tie_break: str = "random", seed: int = 0,
                 skip_gaps: bool = False, refit_every: int | None = None, verbose: bool = False
                 ) -> tuple[pd.DataFrame, str]:
    """Run the standard backtest of one dataset at one H3 resolution.

    Returns ``(results, text)``: ``results`` is the per-origin DataFrame (origin, model, area_fraction,
    k, N, n, n_star, hit_rate, pai, pei, ceiling_pai, seconds) with ``results.attrs["summary"]`` (the
    per-model means) and ``results.attrs["meta"]``; ``text`` is the printable table with PAI, PEI, hit
    rate and ceiling PAI side by side. ``skip_gaps=True`` also scores periods whose history crosses a
    data gap (the history then skips the gap) - a sensitivity run, not the headline. ``refit_every``
    defaults to the dataset's cadence (1 = refit at every origin for every dataset; a larger value reuses
    a fit for the next origins, whose predictions still use all data before each origin).

    Datasets: ``portland-cfs``, ``portland-disorder`` (weekly; scored weeks = fully observed weeks with
    28 observed days before them: 2016-08-29, 09-05, 09-12, 09-19), ``portland-burglary`` and
    ``portland-burglary-mvt`` (weekly, 64 origins 2016-03-07 .. 2017-05-22; the week of 05-29 is cut by
    the end of the data on 05-31), ``milwaukee-cfs`` (daily,
    7 observed days of history: 2018-05-08 .. 05-16)."""
    spec = DATASETS[dataset_name]
    events, notes = load_events(spec, data_dir)
    study, study_note = dataset_study_cells(spec, events, resolution, data_dir)
    return _backtest(spec, events, notes, study, study_note, resolution, models=models, origins=origins,
                     area_fractions=area_fractions, max_origins=max_origins, tie_break=tie_break, seed=seed,
                     skip_gaps=skip_gaps, refit_every=refit_every, verbose=verbose)


def warehouse_backtest(con, resolution: int, *, categories: tuple[str, ...] = (), sources: tuple[str, ...] = (),
                       max_origins: int | None = 12, **kwargs) -> tuple[pd.DataFrame, str]:
    """The same backtest on the deployment's own events (the published warehouse ``con``): weekly, Monday to
    Sunday, the study area being the H3 cells whose centre is in the county; located, non-confidential events,
    optionally of some categories (code prefixes) and sources. The last ``max_origins`` weeks are scored (each
    with only the weeks before it), so a county can see how far the forecast and the baselines reach on its own
    data rather than on Portland's."""
    from onemap import queries

    flt = queries.EventFilter(start=pd.Timestamp("2000-01-01").date(), end=pd.Timestamp("2100-01-01").date(),
                              categories=tuple(categories), sources=tuple(sources))
    where, params = flt.where()
    events = con.execute(f"""
        SELECT lng AS lon, lat, timezone(current_setting('TimeZone'), reported_at) AS time, category_code
        FROM core.events WHERE lng IS NOT NULL AND NOT confidential AND {where}""", params).df()
    if events.empty:
        raise ValueError("no located events in the warehouse for this selection")
    what = ", ".join([*categories, *sources]) or "all categories and sources"
    spec = DatasetSpec("warehouse", "", "time", f"this deployment's located events ({what}), weekly (Mon-Sun)",
                       category_col="category_code")
    study = study_area_cells(queries.scope_shape(con, queries.COUNTY), resolution)
    return _backtest(spec, events, {"rows_read": len(events)}, study, "cells with centre in the county",
                     resolution, max_origins=max_origins, **kwargs)


def _backtest(spec: DatasetSpec, events: pd.DataFrame, notes: dict, study: np.ndarray, study_note: str,
              resolution: int, *, models: Mapping[str, object] | None = None, origins=None,
              area_fractions=(0.01, 0.05), max_origins: int | None = None, tie_break: str = "random",
              seed: int = 0, skip_gaps: bool = False, refit_every: int | None = None, verbose: bool = False
              ) -> tuple[pd.DataFrame, str]:
    dataset_name = spec.name
    step = pd.Timedelta(spec.period)
    coverage = day_coverage(events[spec.time_col], gap_hours=spec.gap_hours)
    days = pd.DatetimeIndex(coverage.index[coverage >= 1.0 - 1e-9])   # fully observed days
    exposure = exposure_from_days(coverage, step)
    if origins is None:
        if skip_gaps:
            # any fully observed target with at least min_history_days observed days before it
            full = scorable_origins(days, step, min_history_days=0)
            n_before = np.searchsorted(days.values, full.values)
            origins = full[n_before >= spec.min_history_days]
        else:
            origins = scorable_origins(days, step, min_history_days=spec.min_history_days)
        if spec.first_origin is not None:
            origins = origins[origins >= pd.Timestamp(spec.first_origin)]
        if spec.origin_every > 1:
            origins = origins[:: spec.origin_every]
    origins = pd.DatetimeIndex(origins)
    if max_origins is not None:
        origins = origins[-max_origins:]
    models = dict(models) if models is not None else default_models(spec, resolution)
    t0 = time.perf_counter()
    res = rolling_origin_backtest(events, study, resolution, origins, models, area_fractions,
                                  period=spec.period, time_col=spec.time_col, category_col=spec.category_col,
                                  exposure=exposure, tie_break=tie_break, seed=seed,
                                  refit_every=spec.refit_every if refit_every is None else refit_every,
                                  verbose=verbose)
    res.meta.update(notes)
    res.meta.update({"dataset": dataset_name, "description": spec.description, "study_area": study_note,
                     "seconds_total": time.perf_counter() - t0,
                     "events_outside_study_cells": int((~np.isin(
                         cells_from_lonlat(events["lon"].to_numpy(), events["lat"].to_numpy(), resolution),
                         study)).sum())})
    title = f"{dataset_name} @ H3 res {resolution}: {spec.description}"
    text = res.to_text(title) + f"\nstudy area: {study_note}; total {res.meta['seconds_total']:.0f} s"
    out = res.per_origin
    out.attrs["summary"] = res.summary
    out.attrs["meta"] = res.meta
    return out, text
