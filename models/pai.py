"""Hotspot-forecast accuracy metrics: hit rate, PAI, PEI and the ceiling (oracle) PAI.

This module is the single definition of these metrics in the code base; the backtest, the bench
scripts, the CLI and the dashboard all call these functions.

Notation (Chainey, Tompson & Uhlig 2008; Hunt 2016 / NIJ):

* ``N``  events in the evaluation window, over the whole study area;
* ``n``  events falling in the flagged cells;
* ``A``  the study area; ``a`` the flagged area;
* ``n*`` the events in the ``k`` cells with the highest *observed* counts, where ``k`` is the number of
  flagged cells (the best possible capture with the same number of cells).

``hit_rate = n/N``, ``PAI = (n/N)/(a/A)``, ``ceiling PAI = (n*/N)/(a*/A)`` (``a*`` = area of the oracle's
``k`` cells), ``PEI = n/n*`` (in [0, 1]).

Study area
    ``A`` is the union of the universe cells: in the backtest these are the H3 cells whose centre lies in
    the study-area polygon (the 60 NIJ police districts for Portland) plus any cell holding an event of
    the series, so every counted event lies in ``A``. The arrays passed here are aligned on that universe
    (one entry per cell, zeros included). ``total_area`` defaults to the sum of the cell areas.

Cell-boundary rounding
    Cells are indivisible, so a coverage fraction ``f`` cannot be hit exactly. The number of flagged cells
    is ``k = max(1, floor(f * A / mean_cell_area + 0.5))`` -- the whole number of cells nearest to the
    nominal area (halves round up); with the union-of-cells study area this is ``round(f * U)`` for ``U``
    cells (e.g. 4,040 cells: 40 at 1 %, 202 at 5 %). The PAI then uses the *actual* flagged area ``a`` (the
    sum of the selected cells' areas), not ``f``. With equal cell areas (H3 areas within a city vary by
    about 0.1 %) ``a/A = k/U`` exactly, ``PAI <= ceiling PAI`` and ``PAI / ceiling = PEI``.

Ties
    Cells with equal scores are ordered by a documented tie-break (``tie_break``):

    * ``"random"`` (default): a random key per cell drawn from ``numpy.random.default_rng(seed)``; a constant
      forecast therefore scores PAI = 1 in expectation. The backtest passes a seed derived from the base
      seed and the target period, so results are reproducible.
    * ``"pessimistic"``: tied cells with the *fewest* actual events first (a lower bound);
    * ``"optimistic"``: tied cells with the most actual events first (an upper bound);
    * ``"cell"``: in order of position in the arrays (e.g. ascending H3 id if sorted that way).

    The oracle ``n*`` does not depend on ties (it is the sum of the ``k`` largest counts).

Undefined cases return ``nan``: no events in the window (``N = 0``), or ``n* = 0`` for the PEI.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PAIResult",
    "ceiling_pai",
    "hit_rate",
    "known_rate_bound",
    "n_flagged_cells",
    "pai",
    "pei",
    "score_forecast",
    "select_top_cells",
]

TIE_BREAKS = ("random", "pessimistic", "optimistic", "cell")


def _as_arrays(pred_scores, actual_counts, cell_area):
    s = np.asarray(pred_scores, dtype=float).ravel()
    y = np.asarray(actual_counts, dtype=float).ravel()
    if s.shape != y.shape:
        raise ValueError(f"pred_scores and actual_counts differ in length: {s.size} vs {y.size}")
    if s.size == 0:
        raise ValueError("empty cell universe")
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError("actual_counts must be finite and non-negative")
    # NaN scores rank last (never flagged before a scored cell).
    s = np.where(np.isnan(s), -np.inf, s)
    area = np.broadcast_to(np.asarray(cell_area, dtype=float), s.shape).astype(float)
    if np.any(area <= 0):
        raise ValueError("cell areas must be positive")
    return s, y, area


def _total_area(area: np.ndarray, total_area) -> float:
    A = float(area.sum()) if total_area is None else float(total_area)
    if A <= 0:
        raise ValueError("total_area must be positive")
    return A


def n_flagged_cells(n_cells: int, area_fraction: float, cell_area=1.0, total_area=None) -> int:
    """Number of cells flagged at coverage ``area_fraction``: the whole number of cells nearest to the
    nominal area ``area_fraction * A`` (halves round up), at least 1 and at most ``n_cells``."""
    if not 0 < area_fraction <= 1:
        raise ValueError("area_fraction must be in (0, 1]")
    area = np.broadcast_to(np.asarray(cell_area, dtype=float), (n_cells,))
    A = _total_area(area, total_area)
    k = int(np.floor(area_fraction * A / float(area.mean()) + 0.5))
    return int(min(max(k, 1), n_cells))


def _order(s: np.ndarray, y: np.ndarray, tie_break: str, seed) -> np.ndarray:
    """Indices sorted by descending score, ties broken by ``tie_break``."""
    if tie_break == "random":
        key = np.random.default_rng(seed).random(s.size)
    elif tie_break == "pessimistic":
        key = y
    elif tie_break == "optimistic":
        key = -y
    elif tie_break == "cell":
        key = np.arange(s.size)
    else:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    # lexsort: last key is primary.
    return np.lexsort((key, -s))


def select_top_cells(pred_scores, area_fraction: float, cell_area=1.0, total_area=None, *,
                     actual_counts=None, tie_break: str = "random", seed=0) -> np.ndarray:
    """Boolean mask of the flagged cells: the ``k`` highest-scoring cells (see the module notes for
    ``k`` and ties). ``actual_counts`` is only needed for the pessimistic/optimistic tie-breaks."""
    s = np.asarray(pred_scores, dtype=float).ravel()
    y = np.zeros_like(s) if actual_counts is None else actual_counts
    s, y, area = _as_arrays(s, y, cell_area)
    k = n_flagged_cells(s.size, area_fraction, area, total_area)
    mask = np.zeros(s.size, dtype=bool)
    mask[_order(s, y, tie_break, seed)[:k]] = True
    return mask


@dataclass(frozen=True)
class PAIResult:
    """All metrics of one forecast at one coverage, from one selection of cells."""

    area_fraction: float
    k: int              # flagged cells
    area_share: float   # a/A actually flagged
    N: float            # events in the window
    n: float            # events captured
    n_star: float       # best possible capture with k cells
    hit_rate: float
    pai: float
    pei: float
    ceiling_pai: float


def score_forecast(pred_scores, actual_counts, cell_area=1.0, total_area=None, area_fraction=0.05, *,
                   tie_break: str = "random", seed=0) -> PAIResult:
    """Hit rate, PAI, PEI and ceiling PAI of one forecast (one selection of cells, computed once)."""
    s, y, area = _as_arrays(pred_scores, actual_counts, cell_area)
    A = _total_area(area, total_area)
    k = n_flagged_cells(s.size, area_fraction, area, A)
    sel = _order(s, y, tie_break, seed)[:k]
    best = np.argsort(-y, kind="stable")[:k]
    N = float(y.sum())
    n = float(y[sel].sum())
    n_star = float(y[best].sum())
    a_share = float(area[sel].sum()) / A
    a_star_share = float(area[best].sum()) / A
    if N > 0:
        hr = n / N
        p = hr / a_share
        ceil = (n_star / N) / a_star_share
    else:
        hr = p = ceil = float("nan")
    e = n / n_star if n_star > 0 else float("nan")
    return PAIResult(area_fraction=float(area_fraction), k=k, area_share=a_share, N=N, n=n, n_star=n_star,
                     hit_rate=hr, pai=p, pei=e, ceiling_pai=ceil)


def hit_rate(pred_scores, actual_counts, cell_area=1.0, total_area=None, area_fraction=0.05, *,
             tie_break: str = "random", seed=0) -> float:
    """Hit rate ``n/N``: share of the window's events that fall in the flagged cells."""
    return score_forecast(pred_scores, actual_counts, cell_area, total_area, area_fraction,
                          tie_break=tie_break, seed=seed).hit_rate


def pai(pred_scores, actual_counts, cell_area=1.0, total_area=None, area_fraction=0.05, *,
        tie_break: str = "random", seed=0) -> float:
    """Predictive Accuracy Index ``(n/N)/(a/A)`` (Chainey et al. 2008); random forecast = 1."""
    return score_forecast(pred_scores, actual_counts, cell_area, total_area, area_fraction,
                          tie_break=tie_break, seed=seed).pai


def pei(pred_scores, actual_counts, cell_area=1.0, total_area=None, area_fraction=0.05, *,
        tie_break: str = "random", seed=0) -> float:
    """Prediction Efficiency Index ``n/n*`` (Hunt 2016): share of the best possible capture with the
    same number of cells, in [0, 1]."""
    return score_forecast(pred_scores, actual_counts, cell_area, total_area, area_fraction,
                          tie_break=tie_break, seed=seed).pei


def ceiling_pai(actual_counts, cell_area=1.0, total_area=None, area_fraction=0.05) -> float:
    """The oracle PAI ``(n*/N)/(a*/A)``: the PAI of flagging the ``k`` cells with the most observed events.
    No forecast can beat it at this coverage; show it next to every PAI."""
    y = np.asarray(actual_counts, dtype=float)
    return score_forecast(y, y, cell_area, total_area, area_fraction, tie_break="optimistic").ceiling_pai


def known_rate_bound(rates, area_fractions=(0.01, 0.05), *, n_sim: int = 200, seed: int = 0) -> dict:
    """Expected PEI and PAI of a forecaster that knows each cell's true Poisson rate exactly.

    Draws ``n_sim`` windows ``y ~ Poisson(rates)``, flags the cells with the highest *rates* and scores
    them against ``y``: the remaining shortfall from PEI = 1 is pure Poisson noise in the scored window,
    which no forecast can remove. A diagnostic for what a target can mean: a PEI target above this bound
    is not reachable in expectation. (With rates estimated from data the bound is optimistic: estimated
    rates are more spread out than the true ones, and real counts are over-dispersed.)

    Returns ``{area_fraction: {"pei": mean, "pai": mean, "ceiling_pai": mean}}``."""
    lam = np.asarray(rates, dtype=float)
    rng = np.random.default_rng(seed)
    acc = {f: np.zeros(3) for f in area_fractions}
    for i in range(int(n_sim)):
        y = rng.poisson(lam)
        for f in area_fractions:
            r = score_forecast(lam, y, area_fraction=f, seed=[int(seed), i])
            acc[f] += (r.pei, r.pai, r.ceiling_pai)
    return {f: dict(zip(("pei", "pai", "ceiling_pai"), (v / n_sim).tolist(), strict=True))
            for f, v in acc.items()}
