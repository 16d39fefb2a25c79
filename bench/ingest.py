"""Ingest benchmark: N grid reports (CSV, GCJ-02) through the whole load path, beside two baselines.

    .venv/bin/python bench/ingest.py --rows 1000000

Prints rows/s and peak memory for (1) `onemap ingest` (parse, validate, convert GCJ-02, spatial join to every
grid, H3, redact, upsert into a fresh warehouse, publish), (2) DuckDB's bare read_csv of the same file,
(3) DuckDB copying the file as it is into a table of a fresh database file (``CREATE TABLE AS SELECT * FROM
read_csv``, then a checkpoint: the cost of merely storing the rows, with no checks at all) and (4) a
straightforward GeoPandas pipeline (read_csv -> points_from_xy -> sjoin -> h3 per row), with ratios.
Each measured step runs in its own process so that peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_file(rows: int, folder: Path) -> Path:
    import pandas as pd

    from geodata.areas import demo_area_set
    from pipelines.demo_generator import DemoGenerator

    out = folder / f"grid_{rows}.csv"
    if out.exists():
        return out
    gen = DemoGenerator(demo_area_set(), n_events=int(rows * 1.02), years=2, end_date="2026-11-15", seed=99,
                        grid_share=1.0, link_share=0.0)
    res = gen.generate(folder / "gen")
    csvs = [p for p in res.grid_files if p.suffix == ".csv"]
    frame = pd.concat([pd.read_csv(p, dtype=str) for p in csvs], ignore_index=True).head(rows)
    frame.to_csv(out, index=False, encoding="utf-8")
    return out


def child(kind: str, path: str, home: str) -> None:
    t0 = time.perf_counter()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage0.ru_utime + usage0.ru_stime
    if kind == "onemap":
        from onemap.settings import load_settings
        from pipelines.ingest import ingest

        settings = load_settings(environ={**os.environ, "ONEMAP_HOME": home})
        [s] = ingest(settings, "grid", [Path(path)], progress=False)
        n = s.rows_read
        extra = {"inserted": s.inserted, "quarantined": s.quarantined, "reconciles": s.reconciles}
    elif kind == "duckdb":
        import duckdb

        n = duckdb.connect().execute("SELECT count(*) FROM read_csv(?, all_varchar=true)", [path]).fetchall()[0][0]
        extra = {}
    elif kind == "duckdb-store":
        import duckdb

        db = Path(home) / "bench_store.duckdb"
        db.unlink(missing_ok=True)
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE raw_rows AS SELECT * FROM read_csv(?)", [path])
        con.execute("CHECKPOINT")
        n = con.execute("SELECT count(*) FROM raw_rows").fetchall()[0][0]
        con.close()
        db.unlink()
        extra = {}
    elif kind == "geopandas":
        import geopandas as gpd
        import h3
        import pandas as pd

        from geodata.areas import demo_area_set

        grids = demo_area_set().grids[["code", "geometry"]]
        df = pd.read_csv(path)
        pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["经度"], df["纬度"]), crs="EPSG:4326")
        joined = gpd.sjoin(pts, grids, how="left", predicate="within")
        joined["h3"] = [h3.latlng_to_cell(y, x, 10) for x, y in zip(joined.geometry.x, joined.geometry.y, strict=True)]
        n = len(df)
        extra = {"note": "no CRS conversion, validation, redaction or storage"}
    else:
        raise SystemExit(f"unknown kind {kind}")
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime - cpu0  # CPU seconds (all threads): less sensitive to a busy machine
    print(json.dumps({"kind": kind, "rows": n, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb, **extra}))


def run(kind: str, path: Path, home: Path) -> dict:
    env = {**os.environ, "ONEMAP_HMAC_KEY": os.environ.get("ONEMAP_HMAC_KEY", "bench-key-" + "0" * 22)}
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(home)], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--skip-geopandas", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if args.make:
        print(make_file(args.rows, folder))
        return
    t0 = time.perf_counter()
    # made in a process of its own: Linux carries a process's peak RSS over fork and exec, so a 3 GB parent
    # would be every measured child's "peak MB"
    path = Path(subprocess.run([sys.executable, __file__, "--make", "--rows", str(args.rows), "--dir", str(folder)],
                               capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip().splitlines()[-1])
    print(f"input: {path} ({path.stat().st_size / 1e6:.0f} MB, made in {time.perf_counter() - t0:.0f} s)")
    results = []
    with tempfile.TemporaryDirectory() as home:
        results.append(run("onemap", path, Path(home)))
    results.append(run("duckdb", path, folder))
    with tempfile.TemporaryDirectory() as home:
        results.append(run("duckdb-store", path, Path(home)))
    if not args.skip_geopandas:
        results.append(run("geopandas", path, folder))
    ours = results[0]
    print(f"\n{'pipeline':<13} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'CPU s':>7} {'peak MB':>8} "
          f"{'ours vs this':>12}")
    for r in results:
        rate = r["rows"] / r["seconds"]
        ratio = (ours["rows"] / ours["seconds"]) / rate
        print(f"{r['kind']:<13} {r['rows']:>10,} {r['seconds']:>8.2f} {rate:>10,.0f} {r['cpu_seconds']:>7.1f} "
              f"{r['peak_mb']:>8.0f} {ratio:>11.2f}x")
    print(f"\nonemap: inserted {ours['inserted']:,}, quarantined {ours['quarantined']:,}, reconciles={ours['reconciles']}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
