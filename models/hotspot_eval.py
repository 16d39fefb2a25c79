"""Predictive check of Emerging Hot Spot classes: does a cell classed at origin ``t`` rise (or fall) next?

Protocol for one origin (column ``t`` of a cells × weeks count cube ``X``):

* :func:`classify_at` — the repo's EHSA (:func:`models.hotspots.gi_star` + :func:`emerging_hotspots`,
  k-ring weights, BH-FDR per slice) on the ``window`` slices ``X[:, t - window:t]`` only; nothing at or
  after ``t`` is read.
* :func:`forward_outcomes` — per cell: trailing weekly mean over the same window, the count of the last
  ``horizon`` weeks before ``t``, the count of the next ``horizon`` weeks ``[t, t + horizon)``, their ratio
  to the trailing expectation ``horizon × mean``, and the two outcomes of :func:`exceeds`:
  ``rise`` = next ≥ ``ratio`` × expectation, ``fall`` = next ≤ expectation / ``ratio``.
* :func:`exceeds` — the rise rule, with the zero-mean case explicit: a cell with no event in the trailing
  window "rises" when it has at least ``zero_min`` events in the next window (the ratio is undefined).
  The mirror fall rule for a zero mean is ``next == 0`` (≤ 0 / ratio).
* :func:`selection_stats` — size, hits and precision of a selected set of cells, and the mean ratio
  over those with a non-zero trailing mean.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.hotspots import emerging_hotspots, gi_star

__all__ = ["classify_at", "exceeds", "forward_outcomes", "selection_stats", "top_cells"]


def classify_at(X, W, t: int, window: int = 26, alpha: float = 0.05, fdr: str = "slice", *,
                time_step: int = 0, global_window: str = "slice") -> np.ndarray:
    """EHSA class codes of every row of ``X`` from the ``window`` weekly slices ending before column ``t``
    (``time_step`` / ``global_window``: the Gi* neighbourhood in time, see :func:`models.hotspots.gi_star`)."""
    X = np.asarray(X, dtype=np.float64)
    if not window <= t <= X.shape[1]:
        raise ValueError("need window <= t <= number of slices")
    z, p = gi_star(X[:, t - window:t], W, time_step=time_step, global_window=global_window)
    return emerging_hotspots(z, p, alpha, fdr=fdr)


def exceeds(count, expected, ratio: float = 1.5, zero_min: int = 2) -> np.ndarray:
    """``count ≥ ratio × expected``; where ``expected`` is 0, ``count ≥ zero_min`` instead."""
    count = np.asarray(count, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return np.where(expected > 0, count >= ratio * expected - 1e-9, count >= zero_min)


def forward_outcomes(X, t: int, window: int = 26, horizon: int = 4, ratio: float = 1.5,
                     zero_min: int = 2) -> pd.DataFrame:
    """Per row of ``X``: ``mean`` (trailing weekly mean), ``last`` / ``next`` (counts of the ``horizon``
    weeks before / from ``t``), ``ratio`` (next / (horizon × mean), NaN for a zero mean), ``rise``,
    ``fall`` (see the module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    if not (window <= t and t + horizon <= X.shape[1] and horizon <= window):
        raise ValueError("need window <= t and t + horizon <= number of slices, horizon <= window")
    mean = X[:, t - window:t].mean(axis=1)
    last = X[:, t - horizon:t].sum(axis=1)
    nxt = X[:, t:t + horizon].sum(axis=1)
    exp = horizon * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(exp > 0, nxt / exp, np.nan)
    fall = np.where(exp > 0, nxt <= exp / ratio + 1e-9, nxt == 0)
    return pd.DataFrame({"mean": mean, "last": last, "next": nxt, "ratio": r,
                         "rise": exceeds(nxt, exp, ratio, zero_min), "fall": fall})


def top_cells(primary, k: int, secondary=None) -> np.ndarray:
    """Boolean mask of the ``k`` rows with the largest ``primary`` (ties by larger ``secondary``, then
    by row order); rows with ``primary`` ≤ 0 are never taken."""
    primary = np.asarray(primary, dtype=np.float64)
    secondary = np.zeros_like(primary) if secondary is None else np.asarray(secondary, dtype=np.float64)
    order = np.lexsort((np.arange(primary.size), -secondary, -primary))[:max(int(k), 0)]
    mask = np.zeros(primary.size, dtype=bool)
    mask[order] = True
    return mask & (primary > 0)


def selection_stats(mask, hit, ratio) -> dict:
    """``n`` selected, ``hits`` among them, ``precision`` (NaN if none), ``ratio_sum`` / ``ratio_n`` over
    the selected cells with a finite ratio (so means can be pooled over origins)."""
    mask = np.asarray(mask, dtype=bool)
    r = np.asarray(ratio, dtype=np.float64)[mask]
    n = int(mask.sum())
    hits = int(np.asarray(hit, dtype=bool)[mask].sum())
    ok = np.isfinite(r)
    return {"n": n, "hits": hits, "precision": hits / n if n else float("nan"),
            "ratio_sum": float(r[ok].sum()), "ratio_n": int(ok.sum())}
