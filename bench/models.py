"""Full-build benchmark: N events over two years straight into core.events, then `onemap build --full`.

    .venv/bin/python bench/models.py --events 5000000

Events are synthesised with numpy (points in the demo county's grids, two years of days, the demo's
category mix) and bulk-inserted, so this times the build itself: aggregation at H3 resolutions 7-10
and by area, Gi* + emerging hot spots (26 weekly slices at res 8 and 9), the outlier score, contract
checks and the atomic publish. The baseline in the same run is DuckDB's bare GROUP BY of the same
events by (res-10 cell, day), the floor any aggregation has to pay. Gi* alone against esda is in
bench/models_gistar.py.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geodata.areas import assign_areas, demo_area_set  # noqa: E402
from geodata.h3cells import cells_from_points  # noqa: E402
from onemap.contracts import CORE_EVENTS  # noqa: E402
from onemap.settings import load_settings  # noqa: E402
from onemap.warehouse import write_session  # noqa: E402

CATS = np.array(["MD02", "MD01", "MD9902", "MD15", "MD1001", "MD09", "CG", "AQ", "ZA", "MS", "QT"])


def synth(n: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    areas = demo_area_set()
    minx, miny, maxx, maxy = areas.county.total_bounds
    lng = rng.uniform(minx, maxx, int(n * 2.2))
    lat = rng.uniform(miny, maxy, len(lng))
    codes = assign_areas(areas, lng=lng, lat=lat)
    inside = codes["grid_code"].notna().to_numpy()
    lng, lat, codes = lng[inside][:n], lat[inside][:n], codes[inside].iloc[:n].reset_index(drop=True)
    n = len(lng)
    t0 = pd.Timestamp("2024-11-16", tz="Asia/Shanghai")
    reported = t0 + pd.to_timedelta(rng.integers(0, 730 * 24 * 60, n), unit="m")
    closed = rng.random(n) < 0.85
    frame = pd.DataFrame({c: None for c in CORE_EVENTS.column_names}, index=range(n))
    frame = frame.assign(
        event_id=[f"grid:B{i}" for i in range(n)], source="grid", source_record_id=[f"B{i}" for i in range(n)],
        reported_at=reported, occurred_at=reported, due_at=reported + pd.Timedelta(days=7),
        closed_at=pd.Series(reported + pd.Timedelta(days=2)).where(closed), category_code=rng.choice(CATS, n),
        category_method="map", lng=lng, lat=lat, src_crs="gcj02", geocode_method="gps", geocode_precision="point",
        county_code=codes["county_code"], town_code=codes["town_code"], village_code=codes["village_code"],
        grid_code=codes["grid_code"], h3_cell=cells_from_points(lat=lat, lng=lng, resolution=10),
        status=np.where(closed, "已办结", "分类流转"), outcome=np.where(closed, "化解", None), confidential=False,
        batch_id="bench", source_file="bench", source_row=np.arange(n), updated_at=t0, content_hash="x")
    return frame


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    args = ap.parse_args()
    from pipelines.build import build

    t = time.perf_counter()
    frame = synth(args.events)
    print(f"synthesised {len(frame):,} events in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(environ={**os.environ, "ONEMAP_HOME": home})
        t = time.perf_counter()
        with write_session(settings.warehouse_path) as con:
            con.register("f", frame)
            con.execute(f"INSERT INTO core.events SELECT {', '.join(CORE_EVENTS.column_names)} FROM f")
            con.unregister("f")
        print(f"bulk insert: {time.perf_counter() - t:.1f} s")
        del frame
        t = time.perf_counter()
        stats = build(settings, as_of=pd.Timestamp("2026-11-16", tz="Asia/Shanghai"), full=True)
        build_s = time.perf_counter() - t
        import duckdb

        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        t = time.perf_counter()
        con.execute("SELECT h3_cell, CAST(reported_at AS DATE) AS d, count(*) FROM core.events GROUP BY ALL").fetchall()
        floor_s = time.perf_counter() - t
        size_mb = settings.warehouse_path.stat().st_size / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{'step':<44} {'seconds':>8}")
    print(f"{'onemap build --full (' + format(stats['events'], ',') + ' events)':<44} {build_s:>8.1f}")
    print(f"{'baseline: bare GROUP BY (cell10, day)':<44} {floor_s:>8.1f}")
    print(f"ratio build / bare group-by: {build_s / floor_s:.1f}x; warehouse {size_mb:.0f} MB; peak RSS {peak:.0f} MB")
    print(f"throughput: {stats['events'] / build_s:,.0f} events/s (target: 5M in <= 60 s)")


if __name__ == "__main__":
    main()
