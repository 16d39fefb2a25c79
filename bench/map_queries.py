"""Map-query latency by viewer: what jurisdiction scoping and the sensitive-count rule cost per map update.

    .venv/bin/python bench/map_queries.py --events 5000000

Builds a warehouse of N synthetic events over two years (bench/build.py's synthesiser and `onemap build`), then
times the queries one map update makes (hex counts at H3 8 and 10 over the last 28 days, the KPI strip with
its 环比 and 同比, the side panel's tables, 积案 by stage and the 积案回放 layer's 28 frames), for each kind of viewer:

- county handler: hex counts from the hex.cell_day aggregate — the baseline of the ratios;
- county viewer: the same aggregate, with sensitive events left out of hexes holding fewer than three of them
  (the aggregate's n_sensitive);
- town and village users: hex counts and KPIs restricted to the area's own events (from core.events, which has
  the area codes the aggregate lacks).

For town and village users it also times ``queries.cells_in_scope`` (which of the county's alert and hot spot
cells are theirs) on every cell holding an event, its worst case: the uniform synthetic events raise almost no
alerts or hot spots. Prints ms p50 / p95 over repeated runs and the ratio to the baseline in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.app import AREA_PANEL  # noqa: E402
from onemap import queries  # noqa: E402
from onemap.metrics import STRIP  # noqa: E402
from onemap.settings import load_settings  # noqa: E402
from onemap.warehouse import connect_readonly  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_build", Path(__file__).with_name("build.py"))
bench_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_build)


def _times(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm: the first run reads the columns from disk
    ms = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--home", type=Path, help="keep the built warehouse here and reuse it on the next run "
                                              "(default: a temporary directory)")
    args = ap.parse_args()
    from pipelines.build import build

    with tempfile.TemporaryDirectory() as scratch:
        home = str(args.home or scratch)
        settings = load_settings(environ={**os.environ, "ONEMAP_HOME": home})
        if settings.warehouse_path.is_file() and args.home:
            print(f"reusing the warehouse in {home}", flush=True)
        else:
            child = multiprocessing.get_context("fork").Process(target=bench_build._load, args=(home, args.events))
            child.start()
            child.join()
            if child.exitcode:
                raise SystemExit(f"synthesising the events failed (exit code {child.exitcode})")
            t = time.perf_counter()
            build(settings, as_of=bench_build.AS_OF, full=True)
            print(f"built {args.events:,} events in {time.perf_counter() - t:.0f} s", flush=True)
        con = connect_readonly(settings.warehouse_path)
        last = queries.date_bounds(con)[1]
        county = queries.EventFilter(start=last - dt.timedelta(days=27), end=last)
        town = queries.area_scope(con, queries.child_areas(con, None)["code"].iloc[0])
        village = queries.area_scope(con, queries.child_areas(con, town)["code"].iloc[0])
        n_town = queries.kpis(con, dataclasses.replace(county, scope=town))["registered"]
        n_all = queries.kpis(con, county)["registered"]
        print(f"28 days: {n_all:,.0f} events in the county, {n_town:,.0f} in {town.name}")
        every_cell = {res: list(queries.hex_counts(con, dataclasses.replace(county, start=county.start.replace(
            year=county.start.year - 2)), res)["cell"]) for res in (8, 9)}
        cases = [
            ("county handler (hex.cell_day aggregate)", county, {}),
            ("county viewer (aggregate, sensitive < 3 left out)", county, {"sensitive_min": 3}),
            (f"town user, {town.name} (core.events)", dataclasses.replace(county, scope=town), {"sensitive_min": 3}),
            (f"village user, {village.name} (core.events)", dataclasses.replace(county, scope=village),
             {"sensitive_min": 3}),
        ]
        print(f"\n{'viewer':<52} {'query':<22} {'p50 ms':>8} {'p95 ms':>8} {'vs handler':>10}")
        base: dict[str, float] = {}
        for label, flt, privacy in cases:
            for query, fn in (("hex counts, H3 8", lambda f=flt, p=privacy: queries.hex_counts(con, f, 8, **p)),
                              ("hex counts, H3 10", lambda f=flt, p=privacy: queries.hex_counts(con, f, 10, **p)),
                              ("KPIs, one period", lambda f=flt: queries.kpis(con, f)),
                              ("strip KPIs + 环比 + 同比", lambda f=flt: queries.kpis_compared(con, f, keys=STRIP)),
                              ("KPIs per child area", lambda f=flt: queries.area_kpis(con, f, keys=AREA_PANEL)),
                              ("daily chart + backlog", lambda f=flt: queries.daily_series(con, f)),
                              ("积案 by stage", lambda f=flt: queries.backlog(con, f, total=True)),
                              ("积案回放, 28 days H3 8", lambda f=flt, p=privacy: queries.backlog_cells(
                                  con, f, 8, queries.backlog_steps(f, queries.reference_time(con)), **p))):
                p50, p95 = _times(fn, args.repeat)
                base.setdefault(query, p50)
                print(f"{label:<52} {query:<22} {p50:>8.1f} {p95:>8.1f} {p50 / base[query]:>9.2f}x")
            if not queries.narrow(flt.scope):
                continue
            # which of the county's alert / hot spot cells are the viewer's (queries.cells_in_scope), at worst:
            # every cell holding an event (the uniform synthetic events raise almost no alerts or hot spots)
            for res in (8, 9):
                cells = every_cell[res]
                p50, p95 = _times(lambda c=cells, r=res, sc=flt.scope: queries.cells_in_scope(con, c, r, sc),
                                  args.repeat)
                query = f"cells_in_scope, {len(cells):,} H3-{res}"
                print(f"{label:<52} {query:<22} {p50:>8.1f} {p95:>8.1f} {'':>10}")
        con.close()
    print(f"\nrepeat {args.repeat}; {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
