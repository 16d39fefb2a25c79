"""Benchmark: whole-cube Gi* (52 weekly slices × ~30k contiguous H3 res-10 cells) vs esda per slice.

Prints figures only (no pass/fail). Run: ``.venv/bin/python bench/models_gistar.py [--repeats 30]``.

* ours: :func:`models.hotspots.gi_star` — z and two-sided p for all 52 slices in one sparse product;
  also the k-ring build and the EHSA extras (BH-FDR per slice, Mann–Kendall on z, classes).
* esda: ``G_Local(y, w, star=True, transform="B", permutations=0)`` (analytic, the fair comparison),
  one call per slice. It is slow, so only ``--esda-slices`` slices are timed and the 52-slice time is
  extrapolated (said so in the output).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from h3.api import basic_int as h3i

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.hexgrid import kring_weights  # noqa: E402
from models.hotspots import emerging_hotspots, gi_star, gi_star_z  # noqa: E402
from models.stats import fdr_bh, mann_kendall  # noqa: E402


class Timings(list):
    """Wall-clock seconds per run, with the process CPU seconds alongside (less sensitive to a busy box)."""

    cpu: list[float]


def _pcts(ts: list[float]) -> str:
    a = np.asarray(ts) * 1000
    out = f"p50 {np.percentile(a, 50):8.2f} ms   p95 {np.percentile(a, 95):8.2f} ms"
    cpu = getattr(ts, "cpu", None)
    if cpu:
        out += f"   cpu p50 {np.percentile(np.asarray(cpu) * 1000, 50):8.2f} ms"
    return out + f"   (n={a.size})"


def _timeit(fn, repeats: int) -> Timings:
    fn()  # warm
    out = Timings()
    out.cpu = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        out.cpu.append(time.process_time() - c0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=int, default=100, help="grid_disk radius (100 -> 30,301 cells)")
    ap.add_argument("--res", type=int, default=10)
    ap.add_argument("--slices", type=int, default=52)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--esda-slices", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    centre = h3i.latlng_to_cell(22.78, 115.37, args.res)
    cells = np.array(h3i.grid_disk(centre, args.radius), dtype=np.uint64)
    rng = np.random.default_rng(args.seed)
    lam = rng.gamma(0.5, 1.0, size=(cells.size, 1))  # uneven cell rates, like real call data
    X = rng.poisson(lam, size=(cells.size, args.slices)).astype(np.float64)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at start (figures inflate when the box is busy)")
    print(f"{cells.size:,} cells "
          f"(H3 res {args.res}, contiguous disk) × {args.slices} slices; Poisson counts, mean {X.mean():.2f}")

    t_w = _timeit(lambda: kring_weights(cells, k=1), 5)
    t_w_h3 = _timeit(lambda: kring_weights(cells, k=1, accelerate=False), 3)
    W = kring_weights(cells, k=1)
    print(f"kring_weights k=1 (h3ronpy path)  {_pcts(t_w)}")
    print(f"kring_weights k=1 (h3-py path)    {_pcts(t_w_h3)}")

    t_gi = _timeit(lambda: gi_star(X, W), args.repeats)
    t_giz = _timeit(lambda: gi_star_z(X, W), args.repeats)
    print(f"ours  gi_star   z + p, all slices {_pcts(t_gi)}")
    print(f"ours  gi_star_z z only            {_pcts(t_giz)}")
    t_st = _timeit(lambda: gi_star(X, W, time_step=1, global_window="cube"), args.repeats)
    print(f"ours  space-time gi_star (time step 1, whole-cube window), z + p {_pcts(t_st)}")
    z, p = gi_star(X, W)
    t_fdr = _timeit(lambda: fdr_bh(p, 0.05, axis=0), 10)
    t_mk = _timeit(lambda: mann_kendall(z), 5)
    mk = mann_kendall(z)
    t_cls = _timeit(lambda: emerging_hotspots(z, p, 0.05, trend=mk), 5)
    print(f"ours  BH-FDR per slice            {_pcts(t_fdr)}")
    print(f"ours  Mann–Kendall on z           {_pcts(t_mk)}")
    print(f"ours  EHSA classes (given MK)     {_pcts(t_cls)}")
    total = np.median(t_gi) + np.median(t_fdr) + np.median(t_mk) + np.median(t_cls)
    print(f"ours  Gi* + FDR + MK + classes, medians summed: {total * 1000:.1f} ms")

    try:
        import esda
        from libpysal.weights import WSP
    except ImportError:
        print("esda/libpysal not importable: no comparison")
        return
    t0 = time.perf_counter()
    w = WSP(kring_weights(cells, k=1, include_self=False)).to_W(silence_warnings=True)
    print(f"esda  weights object build (once, not counted below): {(time.perf_counter() - t0) * 1000:.0f} ms")
    per_slice, max_diff = Timings(), 0.0
    per_slice.cpu = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(min(args.esda_slices, args.slices)):
            c0, t0 = time.process_time(), time.perf_counter()
            g = esda.G_Local(X[:, t], w, star=True, transform="B", permutations=0)
            per_slice.append(time.perf_counter() - t0)
            per_slice.cpu.append(time.process_time() - c0)
            max_diff = max(max_diff, float(np.abs(g.Zs - z[:, t]).max()))
    est = np.median(per_slice) * args.slices
    print(f"esda  G_Local analytic, per slice  {_pcts(per_slice)}   (timed {len(per_slice)} slices)")
    print(f"esda  {args.slices} slices EXTRAPOLATED from {len(per_slice)} timed: {est:.2f} s")
    print(f"esda vs ours max |z difference| on the timed slices: {max_diff:.2e}")
    print(f"ratio esda (extrapolated) / ours p50: {est / np.median(t_gi):,.0f}x")


if __name__ == "__main__":
    main()
