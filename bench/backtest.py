"""Benchmark: rolling-origin backtest of the next-period cell risk forecast (PAI, PEI, ceiling).

Run (from the repo root)::

    .venv/bin/python bench/backtest.py [--only portland-cfs,milwaukee-cfs] [--no-sensitivity] [--out FILE]

Every table comes from :func:`models.backtest.run_backtest` (the same entry point as ``onemap
backtest``): for each origin ``t`` each model is fitted on data before ``t`` only and forecasts the
next period; PAI, PEI (mean per-origin ``n/n*``), hit rate and the ceiling (oracle) PAI are computed by
:mod:`models.pai` at 1 % and 5 % of the study area, ties broken at random with a key from (seed 0, t).

Runs (the issue's list):

(a) Portland NIJ all calls for service, weekly (Mon-Sun), H3 res 9 and 10. October 2016 is missing.
    A week is scored only if its 7 days and the 28 days before it are all observed: 2016-08-29, 09-05,
    09-12, 09-19. No November week qualifies (1 Nov is a Tuesday, and the 28 days before any November
    week reach into October). Models read the gap as unobserved (exposure 0), never as zero calls.
    Sensitivity run ``skip-gaps``: also scores 11-07, 11-14, 11-21 with history that skips the gap.
(b) Portland DISORDER calls (call_group == 'DISORDER'), weekly, res 9 (same weeks).
(c) Portland burglary (~19/week) and burglary + motor-vehicle theft (~70/week), 2012-03..2017-05,
    weekly, res 9, 64 origins 2016-03-07 .. 2017-05-22 (the week of 2017-05-29 is cut by the end of the
    data on 05-31, so it is not scored); target: PAI@5 % >= 1.2 x the all-history count.
(d) Milwaukee calls for service, 1-21 May 2018, bbox 42.8-43.2 N, 88.1-87.8 W. Weekly is impossible
    (3 weeks of data cannot give a week 28 days of history), so the horizon is one **day** with 7 observed
    days of history. Outages are detected from empty hours (>= 6 h): no call from 05-17 12:00 to 05-18
    10:00 and the scrape ends 05-21 14:14, so 05-17, 05-18 and 05-21 are partial days (fractional
    exposure) and the scored days are 05-08 .. 05-16 (sensitivity: + 05-19, 05-20).

Noise floor (diagnostic, uses data after the origin, never a forecast): ``known-rate bound`` = expected
PEI when the true weekly Poisson rate of every cell is known exactly (rates = mean over the 11 fully
observed weeks); ``leave-week-out`` = PEI of ranking by the mean of all *other* fully observed weeks,
past and future. Both say what is attainable at all on a given target week.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository first on the path, as in the other bench scripts

from models.backtest import DATASETS, dataset_study_cells, default_models, load_events, run_backtest  # noqa: E402
from models.forecast import CellRiskForecaster, build_grid, kernel_parts, kernel_score  # noqa: E402
from models.pai import known_rate_bound, score_forecast  # noqa: E402
from models.panel import day_coverage, events_to_panel, exposure_from_days, ring_matrix  # noqa: E402

# (dataset, resolution, skip_gaps, add the gradient-boosting blend for comparison)
RUNS = [
    ("portland-cfs", 9, False, True),
    ("portland-cfs", 10, False, True),
    ("portland-disorder", 9, False, True),
    ("portland-burglary", 9, False, False),
    ("portland-burglary-mvt", 9, False, False),
    ("milwaukee-cfs", 9, False, True),
]
SENSITIVITY = [
    ("portland-cfs", 9, True, False),
    ("portland-cfs", 10, True, False),
    ("portland-disorder", 9, True, False),
    ("milwaukee-cfs", 9, True, False),
]
# the targets: (dataset, res) -> (PEI@1%, PEI@5%) or ("pai5_lift", 0.20, baseline model)
TARGETS = {
    ("portland-cfs", 9): {"pei@0.01": 0.95, "pei@0.05": 0.92},
    ("portland-cfs", 10): {"pei@0.01": 0.80, "pei@0.05": 0.75},
    ("portland-disorder", 9): {"pei@0.01": 0.88, "pei@0.05": 0.82},
}
LIFT_TARGETS = {("portland-burglary", 9): 0.20, ("portland-burglary-mvt", 9): 0.20}
ANCHOR_LAST4 = {  # analytics-anchors.md §2b, naive last 4 weeks: PAI@1, PAI@5, PEI@1, PEI@5, ceil@1, ceil@5
    ("portland-cfs", 9): (15.9, 7.5, 0.92, 0.87, 17.3, 8.7),
    ("portland-cfs", 10): (20.7, 9.1, 0.71, 0.66, 29.0, 13.9),
    ("portland-disorder", 9): (19.4, 8.5, 0.83, 0.75, 23.4, 11.3),
}


def models_for(dataset: str, res: int, with_blend: bool) -> dict:
    spec = DATASETS[dataset]
    m = default_models(spec, res)
    if with_blend:
        m = {"forecaster": m.pop("forecaster"),
             "forecaster-hgb-blend": CellRiskForecaster(lags=spec.lags, period=spec.period, estimator="blend"),
             **m}
    return m


def md_table(summary: pd.DataFrame) -> str:
    head = "| model | PAI@1% | PEI@1% | PAI@5% | PEI@5% | hit rate@1% | hit rate@5% | ceiling@1% | ceiling@5% | s/origin |"
    lines = [head, "|" + "---|" * 10]
    for m, r in summary.iterrows():
        lines.append(f"| {m} | {r['pai@0.01']:.2f} | {r['pei@0.01']:.3f} | {r['pai@0.05']:.2f} | {r['pei@0.05']:.3f} | "
                     f"{r['hit_rate@0.01']:.3f} | {r['hit_rate@0.05']:.3f} | {r['ceiling_pai@0.01']:.2f} | "
                     f"{r['ceiling_pai@0.05']:.2f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def full_grid(dataset: str, res: int):
    """The whole series as one dense cell x period grid on the backtest's universe (for diagnostics that
    may look at the scored weeks)."""
    spec = DATASETS[dataset]
    ev, _ = load_events(spec)
    panel = events_to_panel(ev, res, time_col=spec.time_col, period=spec.period)
    cov = day_coverage(ev[spec.time_col], gap_hours=spec.gap_hours)
    expo = exposure_from_days(cov, spec.period)
    study, _ = dataset_study_cells(spec, ev, res, None)
    return build_grid(panel, cells=study, exposure=expo)


def noise_floor(dataset: str, res: int, scored) -> dict:
    """Known-rate Poisson bound and leave-week-out PEI on the scored weeks (diagnostics only)."""
    g = full_grid(dataset, res)
    full = np.flatnonzero(g.exposure >= 1 - 1e-9)
    rates = g.Y[:, full].mean(axis=1)
    bound = known_rate_bound(rates, (0.01, 0.05), n_sim=200, seed=0)
    lwo = {0.01: [], 0.05: []}
    for t in pd.DatetimeIndex(scored):
        i = g.periods.get_loc(t)
        others = [j for j in full if j != i]
        s = g.Y[:, others].mean(axis=1)
        for f in lwo:
            lwo[f].append(score_forecast(s, g.Y[:, i], area_fraction=f, seed=[0, t.toordinal(), 0]).pei)
    return {"bound": bound, "lwo": {f: float(np.mean(v)) for f, v in lwo.items()}, "weeks": len(full)}


def hindsight(dataset: str, res: int, scored, area_fraction: float = 0.05) -> dict:
    """How far a *stationary-parameter* kernel could go on the scored weeks (diagnostics only, they see
    the scored weeks): mean PAI at ``area_fraction`` of

    * ``base``: the all-history rate (the lift target's baseline; equals the backtest's all-history row);
    * ``kernel``: the best fixed kernel of the forecaster's own candidate grid, the *same* parameters at
      every week, picked on the scored weeks themselves (each week still forecast from its past only);
    * ``lwo``: ranking each week by the rate of all other fully observed weeks of the series, past and
      future, ring-smoothed with the best (a1, a2) of the grid (a ceiling for any stationary surface).

    Returns ``{name: (params, pai)}``. Ties at random with the backtest's seeds, so ``base`` reproduces
    the all-history figure."""
    g = full_grid(dataset, res)
    ts = np.array([g.periods.get_loc(t) for t in pd.DatetimeIndex(scored)])
    seeds = [[0, g.periods[t].toordinal(), 0] for t in ts]

    def mean_pai(S):
        return float(np.mean([score_forecast(S[:, j], g.Y[:, t], area_fraction=area_fraction, seed=seeds[j]).pai
                              for j, t in enumerate(ts)]))

    grid = CellRiskForecaster.DEFAULT_KERNEL_GRID
    rw = CellRiskForecaster(period=DATASETS[dataset].period)._recent_window(g.step)
    out = {"base": ((np.inf, 0.0, 0.0, 0.0), mean_pai(kernel_score(kernel_parts(g, ts, np.inf, rw), 0, 0, 0)))}
    best = ((), -np.inf)
    for hl in grid["halflife"]:
        parts = kernel_parts(g, ts, float(hl), rw)
        for a1, a2, b in itertools.product(grid["a1"], grid["a2"], grid["b"]):
            v = mean_pai(kernel_score(parts, a1, a2, b))
            if v > best[1]:
                best = ((float(hl), a1, a2, b), v)
    out["kernel"] = best
    full = np.flatnonzero(g.exposure >= 1 - 1e-9)
    tot = g.Y[:, full].sum(axis=1, keepdims=True)
    X = tot - g.Y[:, ts]                     # every other fully observed week (ts are all fully observed)
    R1, R2 = ring_matrix(g.cells, 1) @ X, ring_matrix(g.cells, 2) @ X
    best = ((), -np.inf)
    for a1, a2 in itertools.product(grid["a1"], grid["a2"]):
        v = mean_pai(X + a1 * R1 + a2 * R2)
        if v > best[1]:
            best = ((a1, a2), v)
    out["lwo"] = best
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated dataset names")
    ap.add_argument("--no-sensitivity", action="store_true", help="skip the skip-gaps sensitivity runs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_backtest.md"))
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    runs = RUNS + ([] if args.no_sensitivity else SENSITIVITY)
    runs = [r for r in runs if only is None or r[0] in only]
    t_all = time.perf_counter()
    results = {}
    for dataset, res, skip, blend in runs:
        t0 = time.perf_counter()
        df, text = run_backtest(dataset, res, models=models_for(dataset, res, blend), skip_gaps=skip)
        label = f"{dataset} res {res}" + (" (skip-gaps sensitivity)" if skip else "")
        print("=" * 100)
        print(label + (" - SENSITIVITY (history crosses the gap)" if skip else ""))
        print(text, flush=True)
        results[(dataset, res, skip)] = (df.attrs["summary"], df.attrs["meta"], time.perf_counter() - t0)

    floors = {}
    for (dataset, res) in TARGETS:
        if (dataset, res, False) in results:
            meta = results[(dataset, res, False)][1]
            floors[(dataset, res)] = noise_floor(dataset, res, meta["origins"])
    hind = {}
    for (dataset, res) in LIFT_TARGETS:
        if (dataset, res, False) in results:
            hind[(dataset, res)] = hindsight(dataset, res, results[(dataset, res, False)][1]["origins"])

    # ---- verdicts --------------------------------------------------------------------------------
    verdict_lines = []
    for (dataset, res), tg in TARGETS.items():
        if (dataset, res, False) not in results:
            continue
        s = results[(dataset, res, False)][0]
        f = s.loc["forecaster"]
        fl = floors.get((dataset, res))
        b = s.loc["last-4"]
        for key, goal in tg.items():
            frac = float(key.split("@")[1])
            reach = f[key]
            kb = fl["bound"][frac]["pei"] if fl else float("nan")
            lw = fl["lwo"][frac] if fl else float("nan")
            verdict_lines.append(
                f"| {dataset} res {res} | PEI@{frac:.0%} ≥ {goal:.2f} | **{reach:.3f}** "
                f"({'met' if reach >= goal else 'not met'}) | last-4 {b[key]:.3f}, all-history "
                f"{s.loc['all-history', key]:.3f} | {kb:.3f} | {lw:.3f} |")
    for (dataset, res), lift in LIFT_TARGETS.items():
        if (dataset, res, False) not in results:
            continue
        s = results[(dataset, res, False)][0]
        f, a = s.loc["forecaster", "pai@0.05"], s.loc["all-history", "pai@0.05"]
        verdict_lines.append(
            f"| {dataset} res {res} | PAI@5% ≥ {1 + lift:.2f} × all-history ({(1 + lift) * a:.2f}) | **{f:.2f}** "
            f"(+{f / a - 1:.1%}, {'met' if f >= (1 + lift) * a else 'not met'}) | all-history {a:.2f}, "
            f"last-4 {s.loc['last-4', 'pai@0.05']:.2f} | – | – |")

    total = time.perf_counter() - t_all
    cmd = ".venv/bin/python bench/backtest.py" + (f" --only {args.only}" if args.only else "") + \
        (" --no-sensitivity" if args.no_sensitivity else "")
    out = [
        "# Next-period risk forecast — rolling-origin backtest (PAI / PEI / ceiling)",
        "",
        f"Command: `{cmd}` (from the repo root)  ",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {total:.0f} s in all "
        "(2-core VM shared with other jobs; s/origin = fit + predict per origin).",
        "",
        "Protocol: `models.backtest.run_backtest` — for each origin every model is fitted on data before the "
        "origin only; PAI = (n/N)/(a/A), PEI = n/n* (mean of per-origin values), ceiling = oracle PAI with the "
        "same number of cells; k = round(f·U) cells (40 / 202 of 4,040 at res 9); ties at random, seed (0, origin). "
        "Study area A = H3 cells whose centre is in the 60 NIJ districts (EPSG:2913 → 4326) plus any cell holding "
        "an event (res 9: 4,040 cells, res 10: 27,723, as in the anchors). See the docstring of "
        "`bench/backtest.py` for the scored weeks and the gap handling.",
        "",
        "## Targets (issue) vs reached",
        "",
        "| series | target | forecaster | baselines | known-rate bound | leave-week-out |",
        "|---|---|---|---|---|---|",
        *verdict_lines,
        "",
        "*known-rate bound*: expected PEI of a forecast that knows every cell's true Poisson rate (rates = "
        "mean of the 11 fully observed weeks, Aug/Sep/Nov; 200 simulated weeks) — the Poisson noise of the "
        "scored week alone keeps PEI below this. *leave-week-out*: PEI of ranking each scored week by the mean "
        "of all other fully observed weeks, **including later ones** (a cheat, as a ceiling for any stationary "
        "rate estimate). Both are diagnostics, never forecasts.",
        "",
    ]
    if hind:
        out += ["Sparse series: how far any kernel with fixed parameters could go (diagnostics that *see the "
                "scored weeks*, `hindsight()` in this script; PAI@5 %, lift over all-history):", "",
                "| series | all-history | forecaster | best fixed kernel, picked on the scored weeks | "
                "leave-week-out: rate of all other weeks incl. the future, ring-smoothed | target |",
                "|---|---|---|---|---|---|"]
        for (dataset, res), h in hind.items():
            base = h["base"][1]
            f = results[(dataset, res, False)][0].loc["forecaster", "pai@0.05"]
            (hl, a1, a2, b), kv = h["kernel"]
            (la1, la2), lv = h["lwo"]
            out.append(f"| {dataset} res {res} | {base:.2f} | {f:.2f} ({f / base - 1:+.1%}) | {kv:.2f} "
                       f"({kv / base - 1:+.1%}; half-life {hl:g}, a1 {a1:g}, a2 {a2:g}, b {b:g}) | {lv:.2f} "
                       f"({lv / base - 1:+.1%}; a1 {la1:g}, a2 {la2:g}) | "
                       f"{(1 + LIFT_TARGETS[(dataset, res)]) * base:.2f} |")
        out += ["", "A target above the leave-week-out column is not expected to be reached by a stationary risk "
                "surface built from the series' own history (that column already knows the future weeks); "
                "what remains is week-to-week change, which the experiments listed at the end did not find "
                "either.", ""]
    if ANCHOR_LAST4:
        out += ["Check against the anchors (analytics-anchors.md §2b, naive last 4 weeks PAI@1/5, PEI@1/5, "
                "ceiling@1/5):", ""]
        for key, v in ANCHOR_LAST4.items():
            if (*key, False) in results:
                s = results[(*key, False)][0].loc["last-4"]
                c = results[(*key, False)][0].loc["forecaster"]
                out.append(f"- {key[0]} res {key[1]}: anchors {v[0]} / {v[1]}, {v[2]} / {v[3]}, {v[4]} / {v[5]} — "
                           f"ours {s['pai@0.01']:.1f} / {s['pai@0.05']:.1f}, {s['pei@0.01']:.2f} / "
                           f"{s['pei@0.05']:.2f}, {c['ceiling_pai@0.01']:.1f} / {c['ceiling_pai@0.05']:.1f}")
        out.append("")
    for (dataset, res, skip), (summary, meta, secs) in results.items():
        title = f"## {dataset}, H3 res {res}" + (" — sensitivity: history skips the gap" if skip else "")
        orig = meta["origins"]
        out += [title, "",
                f"{DATASETS[dataset].description}. {meta['n_cells']} cells in A; ~{meta['events_per_period']:.0f} "
                f"events per scored window; {len(orig)} origins: "
                f"{', '.join(orig) if len(orig) <= 11 else orig[0] + ' … ' + orig[-1]}. {secs:.0f} s.",
                "", md_table(summary), ""]
    out += [
        "## What was tried, and why the forecaster is the tuned kernel",
        "",
        "- `forecaster` = `CellRiskForecaster()` (default `estimator=\"kernel\"`): exponentially weighted own "
        "rate + ring-1/ring-2 neighbour sums + a recent-window term, with half-life and weights chosen on the "
        "weeks before the origin by the events captured in the top 1 %/5 % (it falls back to the plain "
        "all-history count unless a candidate captures ≥ 0.5 % more).",
        "- `forecaster-hgb-blend`: `HistGradientBoostingRegressor(loss=\"poisson\")` on own counts over "
        "1–52-week windows, ring-1/2 counts over the same windows, EWM rates, same-season rate, category "
        "rates (call group / case type), history length and the kernel score, blended geometrically with the "
        "kernel. Within noise of the kernel on the dense series (tables above; HGB alone was no better) at "
        "about 10× the cost, so it is an option (`estimator=\"blend\"` / `\"hgb\"`), not the default. A "
        "non-negative Poisson additive mix of the same rate features (`estimator=\"additive\"`) was within "
        "noise on the dense series and close to the kernel on burglary in exploratory runs (PAI@5 % 4.24 "
        "with a refit every 4 weeks).",
        "- Exploratory scores checked directly on the scored weeks (hence *not* adopted, to avoid tuning on "
        "the test weeks): capping calls per cell-day, distinct (day, location) pairs, active days, square-root "
        "counts, EWM half-lives of 2–8 weeks, fixed ring weights. None beat the all-history count at both 1 % "
        "and 5 % by more than noise at res 9 (best: EWM half-life 2 weeks, +0.006 PEI@1 % but −0.006 @5 %); "
        "active days was clearly worse (−0.023 PEI@1 %).",
        "- Sparse burglary (exploratory, run in a scratch harness on the same grid and scorer, not kept in the "
        "repo; *dev* = earlier weeks that the headline never scores, 2014-03..2016-02, *test* = the 64 scored "
        "weeks; lifts in PAI@5 % over all-history): (1) vehicle-theft history as a risk-terrain covariate "
        "for burglary (score + c × MVT rate, c 0.1–1): +3–5 points on top of a *fixed* lightly smoothed "
        "kernel in both periods, but nothing once the ring weights are tuned — simulated with the "
        "forecaster's own rolling tuner it was −0.5 (dev) / −4 (test) points with c in the grid and −1.4 / "
        "+0.5 as a second-stage weight; best fixed kernel + MVT picked on the test weeks 4.52 (+17.6 %), "
        "still below the target 4.61. (2) Gaussian KDE of the event points (100–400 m, half-life 52 "
        "weeks–∞) instead of hex rings: best on dev (400 m, 104 weeks, +19 %) gives +6 % on test; best on "
        "test +12.7 %. (3) Same-season rate (±3 / ±6 weeks of year in earlier years) added to the smoothed "
        "rate: −1 to −18 points. (4) Near-repeat boosts (own + ring-1 counts of the last 1–13 weeks; a "
        "Bowers-style prospective score over 8 weeks and 2 rings): at best +1–5 points on dev but 0 to −3 "
        "on test (larger weights −5 to −30). (5) Weighting prowler vs priority "
        "burglary calls: −2 to −8 points. (6) Tuning choices (52 / 104 / 156 inner weeks, 5 %-only "
        "objective, coordinate-wise tuning, neighbourhood-smoothed or top-m averaged picks): ±3 points in "
        "either direction between dev and test, i.e. selection noise. None was adopted.",
        "- Burglary + vehicle theft: vehicle theft (two thirds of the events) is barely stationary: even the "
        "leave-week-out 5-year rate gains only a few per cent over all-history (table above), and every "
        "tested surface, including per-category weights and half-lives, stayed within +5 % on dev and test.",
    ]
    for (dataset, res), tg in TARGETS.items():
        fl = floors.get((dataset, res))
        if fl is None:
            continue
        parts = []
        for key, goal in tg.items():
            frac = float(key.split("@")[1])
            kb, lw = fl["bound"][frac]["pei"], fl["lwo"][frac]
            where = ("above the known-rate bound: not reachable in expectation by any forecast" if goal > kb else
                     "below the known-rate bound but above the leave-week-out cheat: would need a better rate "
                     "estimate than all 11 weeks including the future" if goal > lw else "below both diagnostics")
            parts.append(f"PEI@{frac:.0%} target {goal:.2f} vs bound {kb:.3f} / leave-week-out {lw:.3f} ({where})")
        out.append(f"- {dataset} res {res}: " + "; ".join(parts) + ".")
    out += [
        "- Dense weekly series: with 4–7 weeks of history the plain all-history count is already within about "
        "0.01 PEI of the leave-week-out cheat, so no forecaster can add much on these four weeks; the "
        "forecaster's job there is not to lose to it while still gaining where there is signal (res 10 "
        "smoothing, sparse burglary).",
        "",
    ]
    Path(args.out).write_text("\n".join(out), encoding="utf-8")
    print(f"\nwrote {args.out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
