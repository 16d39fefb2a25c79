"""Full-build benchmark: N events over two years straight into core.events, then `onemap build --full`.

    .venv/bin/python bench/build.py --events 5000000

Events are synthesised with numpy (points in the demo county's grids, two years of days, the demo's
category mix) and bulk-inserted by a child process, so this times the build itself and the peak memory
printed is the build's (the synthetic frame never lives in this process): aggregation at H3 resolutions
7-10 and by area, Gi* + emerging hot spots (26 weekly slices at res 8 and 9), the outlier score, the
"unusual now" alerts, repeat places, the KPI mart, contract checks and the atomic publish. The baseline in
the same run is DuckDB's bare GROUP BY of the same events by (res-10 cell, day), the floor any
aggregation has to pay. Gi* alone against esda is in bench/models_gistar.py.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
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
AS_OF = pd.Timestamp("2026-11-16", tz="Asia/Shanghai")


def synth(n: int, seed: int = 5) -> pd.DataFrame:
    """Exactly ``n`` events at uniform random points inside the demo county's grids."""
    rng = np.random.default_rng(seed)
    areas = demo_area_set()
    minx, miny, maxx, maxy = areas.county.total_bounds
    parts, have = [], 0
    while have < n:  # about 45 % of the bounding box lies in a grid
        lng = rng.uniform(minx, maxx, int((n - have) * 2.3) + 1000)
        lat = rng.uniform(miny, maxy, len(lng))
        codes = assign_areas(areas, lng=lng, lat=lat)
        inside = codes["grid_code"].notna().to_numpy()
        parts.append((lng[inside], lat[inside], codes[inside]))
        have += int(inside.sum())
    lng = np.concatenate([p[0] for p in parts])[:n]
    lat = np.concatenate([p[1] for p in parts])[:n]
    codes = pd.concat([p[2] for p in parts], ignore_index=True).iloc[:n]
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


def _load(home: str, n: int) -> None:
    """Child process: synthesise and bulk-insert the events into a fresh warehouse under ``home``."""
    t = time.perf_counter()
    frame = synth(n)
    print(f"synthesised {len(frame):,} events in {time.perf_counter() - t:.1f} s", flush=True)
    settings = load_settings(environ={**os.environ, "ONEMAP_HOME": home})
    t = time.perf_counter()
    with write_session(settings.warehouse_path) as con:
        con.register("f", frame)
        con.execute(f"INSERT INTO core.events SELECT {', '.join(CORE_EVENTS.column_names)} FROM f")
        con.unregister("f")
    print(f"bulk insert: {time.perf_counter() - t:.1f} s", flush=True)


class _RssSampler:
    """Resident memory of this process every 20 ms, to attribute a peak to each build step."""

    def __init__(self):
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as fh:
                self.samples.append((time.perf_counter(), int(fh.read().split()[1]) * page))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak_mb(self, start: float, end: float) -> float:
        inside = [r for t, r in self.samples if start <= t <= end]
        return max(inside, default=0) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    args = ap.parse_args()
    from pipelines.build import build

    with tempfile.TemporaryDirectory() as home:
        child = multiprocessing.get_context("fork").Process(target=_load, args=(home, args.events))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"synthesising the events failed (exit code {child.exitcode})")
        settings = load_settings(environ={**os.environ, "ONEMAP_HOME": home})
        cpu0, t0 = os.times(), time.perf_counter()
        with _RssSampler() as rss:
            stats = build(settings, as_of=AS_OF, full=True)
        build_s, cpu1 = time.perf_counter() - t0, os.times()
        import duckdb

        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        t = time.perf_counter()
        con.execute("SELECT h3_cell, CAST(reported_at AS DATE) AS d, count(*) FROM core.events GROUP BY ALL").fetchall()
        floor_s = time.perf_counter() - t
        con.close()
        size_mb = settings.warehouse_path.stat().st_size / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB -> MB
    print(f"\n{'step':<44} {'seconds':>8} {'peak MB':>8}")
    start = t0
    for step, s in stats["seconds"].items():
        print(f"{step:<44} {s:>8.1f} {rss.peak_mb(start, start + s):>8.0f}")
        start += s
    print(f"{'onemap build --full (' + format(stats['events'], ',') + ' events)':<44} {build_s:>8.1f} {peak:>8.0f}")
    print(f"{'baseline: bare GROUP BY (cell10, day)':<44} {floor_s:>8.1f}")
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    print(f"ratio build / bare group-by: {build_s / floor_s:.1f}x; build CPU {cpu:.1f} s on {os.cpu_count()} cores; "
          f"warehouse {size_mb:.0f} MB; peak RSS of the build {peak:.0f} MB")
    print(f"throughput: {stats['events'] / build_s:,.0f} events/s (target: 5M in <= 60 s); "
          f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
