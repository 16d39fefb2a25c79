"""Benchmark: do Emerging Hot Spot classes predict the next 4 weeks? (analytics-anchors §5c, last paragraph)

Run (from the repo root)::

    .venv/bin/python bench/ehsa.py [--datasets portland8,portland9,demo8] [--every 4] [--years 2]
                                   [--demo-dir DIR] [--out bench/RESULTS_ehsa.md]

Proposed acceptance test: cells classed **new or intensifying hot** should have a next-4-week count
≥ 1.5 × their trailing 26-week weekly mean × 4, at ≥ 60 % precision.

Protocol, for each rolling origin ``t`` (a Monday; every ``--every`` weeks over the last ``--years`` years
of data whose 26 weeks before and 4 weeks from ``t`` are fully observed):

* classes: the repo's EHSA (:func:`models.hotspot_eval.classify_at` = Gi* on k=1 rings + BH-FDR 0.05 per
  slice + Mann–Kendall, as ``pipelines/build.py`` runs it) on the 26 weekly slices ending at ``t``;
  nothing at or after ``t`` is read;
* outcome (:func:`models.hotspot_eval.forward_outcomes`): ``rise`` = next-4-week count ≥ 1.5 × 4 ×
  trailing 26-week mean; a cell with **no event in the trailing 26 weeks rises only with ≥ 2 events in
  the next 4 weeks**. Cold classes are scored with the mirror rule ``fall`` = next 4 weeks ≤ 4 × mean / 1.5
  (for a zero mean: no event next). "ratio" = next-4 / (4 × trailing mean), averaged over the selected
  cells with a non-zero mean;
* baselines in the same run, scored with ``rise``: (a) ``active`` — every cell with ≥ 1 event in the
  trailing 26 weeks; (b) ``naive-rising`` — cells whose last 4 weeks were ≥ 1.5 × 4 × trailing mean (the
  same rule applied backwards; a zero mean never qualifies); (c) ``top-last4`` — the cells with the
  largest last-4-week counts (ties: larger 26-week total, then cell order), as many as new + intensifying
  hot cells at that origin (origins with none contribute nothing).

Precision is pooled over origins (hits / classed cells summed over origins); ``per origin`` is the mean
number of classed cells per origin.

Data: Portland NIJ burglary + motor-vehicle theft calls 2012-03..2017-05 (``portland-burglary-mvt`` in
:mod:`models.backtest`, loaded with its loaders), weekly Mon–Sun, H3 res 8 and 9; cells = the backtest's
universe (centre in the 60 NIJ districts, plus every cell holding an event); the demo county (generator
seed 1, 200k events over 2 years ending 2026-11-15, ``bench/anomaly.py``'s ``demo_dir``/``load_demo``)
at res 8, cells = every cell covering the county plus every event cell. Milwaukee (3 weeks) is too short.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomaly import demo_dir, load_demo  # noqa: E402

from models.backtest import DATASETS, dataset_study_cells, load_events, scorable_origins  # noqa: E402
from models.hexgrid import kring_weights  # noqa: E402
from models.hotspot_eval import classify_at, exceeds, forward_outcomes, selection_stats, top_cells  # noqa: E402
from models.panel import day_coverage, events_to_panel, period_floor  # noqa: E402
from onemap.metrics import wilson_interval  # noqa: E402

WINDOW, HORIZON, RATIO, ZERO_MIN, TARGET = 26, 4, 1.5, 2, 0.60
WEEK = pd.Timedelta("7D")
HOT_ORDER = ["new_hot", "consecutive_hot", "intensifying_hot", "persistent_hot", "diminishing_hot",
             "sporadic_hot", "oscillating_hot", "historical_hot"]
BASELINES = ["active", "naive-rising", "top-last4"]


# --------------------------------------------------------------------------------------------------
# data: (cells, weeks, cube, origins)
# --------------------------------------------------------------------------------------------------
def cube_from_panel(panel: pd.DataFrame, cells: np.ndarray, weeks: pd.DatetimeIndex) -> np.ndarray:
    X = np.zeros((cells.size, weeks.size))
    p = panel[panel["week"].isin(weeks)]
    np.add.at(X, (np.searchsorted(cells, p["cell"].to_numpy(np.uint64)), weeks.get_indexer(p["week"])), p["n"])
    return X


def last_years(origins: pd.DatetimeIndex, years: float, every: int) -> pd.DatetimeIndex:
    """Origins within the last ``years`` years, every ``every``-th counted back from the last one."""
    o = origins[origins >= origins[-1] - pd.Timedelta(weeks=round(52 * years) - 1)]
    return o[::-1][::every][::-1]


def load_portland(res: int, years: float, every: int):
    spec = DATASETS["portland-burglary-mvt"]
    ev, _ = load_events(spec)
    panel = events_to_panel(ev, res, time_col=spec.time_col)
    study, note = dataset_study_cells(spec, ev, res, None)
    cells = np.union1d(study, panel["cell"].to_numpy(np.uint64))
    cov = day_coverage(ev[spec.time_col])
    days = cov.index[cov >= 1 - 1e-9]
    origins = scorable_origins(days, WEEK, horizon=HORIZON, min_history_days=7 * WINDOW)
    weeks = pd.date_range(origins[0] - WINDOW * WEEK, origins[-1] + (HORIZON - 1) * WEEK, freq=WEEK)
    note = f"{cells.size} cells: {note} + every event cell; {len(ev)} events"
    return cells, weeks, cube_from_panel(panel, cells, weeks), last_years(origins, years, every), note


def load_demo8(path: Path | None, years: float, every: int):
    from geodata.areas import demo_area_set
    from geodata.h3cells import cells_covering

    path = demo_dir(path)
    daily, _ = load_demo(path, 8)
    day = pd.to_datetime(daily["day"].to_numpy(), unit="D")
    panel = pd.DataFrame({"cell": daily["cell"].to_numpy(np.uint64), "week": period_floor(day, WEEK),
                          "n": daily["n"].to_numpy()})
    cover = cells_covering(demo_area_set().county.geometry.union_all(), 8)
    cells = np.union1d(cover, panel["cell"].to_numpy())
    first, last = day.min(), day.max()
    weeks = pd.date_range(period_floor([first + pd.Timedelta("6D")], WEEK)[0], last - pd.Timedelta("6D"), freq=WEEK)
    weeks = weeks[weeks + pd.Timedelta("6D") <= last]   # full weeks only
    origins = weeks[WINDOW:len(weeks) - HORIZON + 1]
    note = f"{cells.size} cells: covering the county + every event cell; {int(daily['n'].sum())} events ({path})"
    return cells, weeks, cube_from_panel(panel, cells, weeks), last_years(origins, years, every), note


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------
def evaluate(name: str, cells, weeks, X, origins, time_step: int = 0, global_window: str = "slice") -> pd.DataFrame:
    """Rows per (origin, outcome, selection); outcome ``cell`` = the classed hex's own counts (the anchor's
    test), ``disk`` = the sums over its k=1 disk (the neighbourhood Gi* scores), same rules."""
    W = kring_weights(cells, k=1)
    cubes = {"cell": X, "disk": np.asarray(W @ X)}
    rows = []
    for o, (kind, C) in ((o, c) for o in origins for c in cubes.items()):
        t = weeks.get_loc(o)
        cls = classify_at(X, W, t, WINDOW, time_step=time_step, global_window=global_window)
        out = forward_outcomes(C, t, WINDOW, HORIZON, RATIO, ZERO_MIN)
        sel = {c: cls == c for c in np.unique(cls) if c != "no_pattern"}
        ni = (cls == "new_hot") | (cls == "intensifying_hot")
        sel["new+intensifying_hot"] = ni
        sel["all_hot"] = np.char.endswith(cls.astype(str), "_hot")
        sel["active"] = out["mean"].to_numpy() > 0
        sel["naive-rising"] = sel["active"] & exceeds(out["last"], HORIZON * out["mean"], RATIO, ZERO_MIN)
        sel["top-last4"] = top_cells(out["last"], int(ni.sum()), out["mean"])
        for s, mask in sel.items():
            hit = out["fall"] if s.endswith("_cold") else out["rise"]
            rows.append({"dataset": name, "origin": o, "outcome": kind, "selection": s,
                         "rule": "fall" if s.endswith("_cold") else "rise",
                         **selection_stats(mask, hit, out["ratio"])})
    return pd.DataFrame(rows)


def summarise(per: pd.DataFrame, n_origins: int) -> pd.DataFrame:
    g = per.groupby("selection").agg(n=("n", "sum"), hits=("hits", "sum"), ratio_sum=("ratio_sum", "sum"),
                                     ratio_n=("ratio_n", "sum"), rule=("rule", "first"),
                                     origins_with=("n", lambda v: int((v > 0).sum())))
    g["per_origin"] = g["n"] / n_origins
    g["precision"] = g["hits"] / g["n"].where(g["n"] > 0)
    g["lo"], g["hi"] = wilson_interval(g["hits"], g["n"])
    g["mean_ratio"] = g["ratio_sum"] / g["ratio_n"].where(g["ratio_n"] > 0)
    cold = sorted(s for s in g.index if s.endswith("_cold"))
    order = [s for s in HOT_ORDER if s in g.index] + ["new+intensifying_hot", "all_hot"] + cold + BASELINES
    return g.reindex([s for s in order if s in g.index])


def md_table(summ: pd.DataFrame) -> str:
    lines = ["| selection | rule | classed cells (all origins) | per origin | origins with any | precision | "
             "95 % CI | mean ratio next4 / (4 × mean) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s, r in summ.iterrows():
        prec = f"{r['precision']:.1%} ({int(r['hits'])}/{int(r['n'])})" if r["n"] else "—"
        ratio = f"{r['mean_ratio']:.2f}" if np.isfinite(r["mean_ratio"]) else "—"
        ci = f"{r['lo']:.0%}–{r['hi']:.0%}" if r["n"] else "—"
        lines.append(f"| {s} | {r['rule']} | {int(r['n'])} | {r['per_origin']:.2f} | {int(r['origins_with'])} | "
                     f"{prec} | {ci} | {ratio} |")
    return "\n".join(lines)


def verdict(summ: pd.DataFrame) -> str:
    if "new+intensifying_hot" not in summ.index or not summ.loc["new+intensifying_hot", "n"]:
        return "not testable (no new or intensifying hot cell at any origin)"
    r = summ.loc["new+intensifying_hot"]
    met = "**met**" if r["precision"] >= TARGET else "**not met**"
    return f"new+intensifying precision {r['precision']:.1%} on {int(r['n'])} cells vs target ≥ 60 %: {met}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="portland8,portland9,demo8")
    ap.add_argument("--every", type=int, default=4, help="weeks between origins")
    ap.add_argument("--years", type=float, default=2.0, help="origins over the last N years of data")
    ap.add_argument("--demo-dir", type=Path, default=None, help="reuse a generated demo (else a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--time-step", type=int, default=0,
                    help="Gi* neighbourhood time step (Esri's; 0 = purely spatial Gi* per slice)")
    ap.add_argument("--global-window", choices=("slice", "cube"), default=None,
                    help="bins each neighbourhood is compared with (default: slice, or cube with --time-step > 0)")
    args = ap.parse_args(argv)
    window = args.global_window or ("cube" if args.time_step else "slice")
    t_all = time.perf_counter()
    loaders = {"portland8": lambda: load_portland(8, args.years, args.every),
               "portland9": lambda: load_portland(9, args.years, args.every),
               "demo8": lambda: load_demo8(args.demo_dir, args.years, args.every)}
    md = ["# Emerging hot spot classes: predictive check (bench/ehsa.py)", "",
          f"Command: `.venv/bin/python bench/ehsa.py --datasets {args.datasets} --every {args.every} "
          f"--years {args.years:g} --time-step {args.time_step} --global-window {window}"
          + (" --out …`" if args.out else "`"), "",
          "Protocol: see the docstring of `bench/ehsa.py`. Rise rule: next-4-week count ≥ 1.5 × 4 × trailing "
          "26-week mean (zero mean: ≥ 2 events); cold classes: next 4 ≤ 4 × mean / 1.5 (zero mean: 0 events). "
          "Precision pooled over origins.", ""]
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        cells, weeks, X, origins, note = loaders[name]()
        t1 = time.perf_counter()
        per = evaluate(name, cells, weeks, X, origins, args.time_step, window)
        secs = time.perf_counter() - t1
        head = (f"## {name}\n\n{note}. {len(origins)} origins {origins[0]:%Y-%m-%d} .. {origins[-1]:%Y-%m-%d} "
                f"(every {args.every} weeks); {X.sum() / X.shape[1]:.0f} events per week on average. "
                f"Load {t1 - t0:.1f} s, evaluation {secs:.1f} s.\n")
        print(head, flush=True)
        md.append(head)
        for kind, title in (("cell", "outcome = the classed hex's own count (the anchor's test)"),
                            ("disk", "sensitivity: outcome = the count of the hex's k=1 disk (7 hexes)")):
            summ = summarise(per[per["outcome"] == kind], len(origins))
            body = f"### {name}, {title}\n\n{md_table(summ)}\n\nAcceptance test ({kind}): {verdict(summ)}\n"
            print(body, flush=True)
            md.append(body)
    wall = time.perf_counter() - t_all
    md.append(f"Total wall time {wall:.0f} s on {platform.node()} ({platform.python_version()}).")
    print(f"total {wall:.1f} s")
    if args.out:
        args.out.write_text("\n".join(md) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
