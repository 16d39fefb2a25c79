"""Slow build-ups ("持续上升"): NB CUSUM per cell and per k-ring disk, as ``kind = "ramp"`` alerts.

A one-sided NB CUSUM (:mod:`models.cusum`) runs per cell and per k-ring disk over a monitoring period
(e.g. 28 days) against expected counts fitted on the history before it; p = exp(−S) (Ville's bound), BH
per family; ``window_start`` is the estimated onset. Rows have the layout of :mod:`models.alerts`
(``ALERT_COLUMNS``) with a Chinese sentence, so the build, the CLI and the map treat them alike.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.alerts import (
    _LN10,
    ALERT_COLUMNS,
    _bh_cut,
    _HexNames,
    _local_max,
    _sentence,
    _top_drivers,
    bh_qvalues,
    fit_before,
)
from models.cusum import cusum_pvalue, nb_cusum
from models.expected import ExpectedCounts, day_numbers
from models.hexgrid import as_cells, kring_weights
from models.stats import fdr_bh

__all__ = ["ScoredRamps", "ramp_alerts", "score_ramps", "select_ramp_alerts"]

# --------------------------------------------------------------------------------------------------
# slow build-ups: NB CUSUM per cell and per k-ring disk (models.cusum)
# --------------------------------------------------------------------------------------------------
@dataclass
class ScoredRamps:
    """NB CUSUM paths over a monitoring period, per cell and per k-ring disk centred on each cell.

    ``y``/``mu`` are cells × days (observed, in-control expectation from a model fitted before the
    period); ``S_*``/``onset_*`` the CUSUM statistic and estimated run start (day index, −1 = no run)
    after each day; ``lam`` (cells × categories) and ``profile`` (days × categories) give expected
    counts per category for the drivers; ``events`` = (cell index, day index, category index, n)."""

    days: np.ndarray                  # day numbers of the monitoring period
    k: int
    kappa: float
    cells: np.ndarray
    W: sp.csr_matrix
    y: np.ndarray
    mu: np.ndarray
    alpha_cell: np.ndarray
    alpha_ring: np.ndarray
    categories: np.ndarray
    lam: np.ndarray
    profile: np.ndarray
    events: tuple
    min_observed: int = 3
    S_cell: np.ndarray = field(init=False)
    onset_cell: np.ndarray = field(init=False)
    S_ring: np.ndarray = field(init=False)
    onset_ring: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.S_cell, self.onset_cell = nb_cusum(self.y, self.mu, self.alpha_cell[:, None], self.kappa)
        self.S_ring, self.onset_ring = self.ring_paths()

    def ring_paths(self, keep: np.ndarray | None = None, rows: np.ndarray | None = None):
        """Disk CUSUM paths; ``keep`` (cells, bool) drops cells from every disk; ``rows`` = centres."""
        W = self.W if rows is None else self.W[rows]
        y, mu = (self.y, self.mu) if keep is None else (self.y * keep[:, None], self.mu * keep[:, None])
        a = self.alpha_ring if rows is None else self.alpha_ring[rows]
        return nb_cusum(np.asarray(W @ y), np.asarray(W @ mu), a[:, None], self.kappa)

    def run_sums(self, y: np.ndarray, mu: np.ndarray, S: np.ndarray, onset: np.ndarray, t: int):
        """(p, score, onset, observed, expected) of the runs alive after day index ``t``; runs with fewer
        than ``min_observed`` events have p = 1, score 0."""
        on = onset[:, t]
        cy, cm = np.cumsum(y[:, :t + 1], axis=1), np.cumsum(mu[:, :t + 1], axis=1)
        idx = np.arange(on.size)
        before = np.maximum(on - 1, 0)
        obs = np.where(on >= 0, cy[:, t] - np.where(on > 0, cy[idx, before], 0.0), 0.0)
        exp = np.where(on >= 0, cm[:, t] - np.where(on > 0, cm[idx, before], 0.0), 0.0)
        s = np.where(obs >= self.min_observed, S[:, t], 0.0)
        return cusum_pvalue(s), s / _LN10, on, obs, exp

    def cell_tests(self, t: int = -1):
        return self.run_sums(self.y, self.mu, self.S_cell, self.onset_cell, t % self.days.size)

    def ring_tests(self, t: int = -1):
        t = t % self.days.size
        return self.run_sums(np.asarray(self.W @ self.y), np.asarray(self.W @ self.mu), self.S_ring,
                             self.onset_ring, t)

    def ring_local_max(self, t: int = -1) -> np.ndarray:
        _, score, _, obs, exp = self.ring_tests(t)
        return _local_max(self.W, score, obs - exp)

    def drivers(self, rows: np.ndarray, first: int, last: int, top: int) -> list[dict]:
        """Categories driving the rise in cells ``rows`` over day indices ``first..last``."""
        if top <= 0 or self.categories.size <= 1:
            return []
        ci, ti, ki, n = self.events
        sel = np.isin(ci, rows) & (ti >= first) & (ti <= last)
        o = np.bincount(ki[sel], weights=n[sel], minlength=self.categories.size)
        e = self.lam[rows].sum(axis=0) * self.profile[first:last + 1].sum(axis=0)
        return _top_drivers(o, e, self.categories, top)


def score_ramps(model: ExpectedCounts, window: pd.DataFrame, end, monitor_days: int = 28, k: int = 1,
                kappa: float = 1.5, min_observed: int = 3, cells=None) -> ScoredRamps:
    """Run the NB CUSUM over the ``monitor_days`` days ending at ``end`` against a *fitted* model (fitted
    on history before the period). Daily dispersion: the model's per-cell NB alpha of 1-day sums (cell and
    disk) plus the level uncertainty ``1/shape`` (as in :func:`score_cells`)."""
    end = int(day_numbers(end))
    days = np.arange(end - int(monitor_days) + 1, end + 1, dtype=np.int64)
    if len(window):
        d = day_numbers(window["day"].to_numpy())
        window = window[(d >= days[0]) & (d <= end)]
    wcells = as_cells(window["cell"].to_numpy()) if len(window) else np.zeros(0, dtype=np.uint64)
    universe = np.union1d(model.cells_, wcells)
    if cells is not None:
        universe = np.union1d(universe, as_cells(cells))
    universe = universe[universe != 0]
    profile = model.time_profile(days).to_numpy()                      # days × categories
    _, mu_end = model.expected_matrix(end, 1, universe)                # lam × profile(end)
    lam = mu_end / profile[-1][None, :]
    mu = lam @ profile.T                                               # cells × days
    cats = model.categories_
    ci = np.searchsorted(universe, wcells)
    ti = (day_numbers(window["day"].to_numpy()) - days[0]) if len(window) else np.zeros(0, dtype=np.int64)
    n = window["n"].to_numpy(dtype=np.float64) if len(window) else np.zeros(0)
    if "category_code" in window.columns and cats.size > 1 and len(window):
        codes = window["category_code"].astype(str).to_numpy()
        kj = np.minimum(np.searchsorted(cats, codes), cats.size - 1)
        ki = np.where(cats[kj] == codes, kj, -1)
    else:
        ki = np.full(ci.size, -1, dtype=np.int64)
    known = ki >= 0  # an unseen category counts in the totals, never as a driver
    y = np.bincount(ci * days.size + ti, weights=n, minlength=universe.size * days.size).reshape(universe.size, -1)
    W = kring_weights(universe, k, include_self=True)
    a_cell, a_ring = model.dispersion_per_cell(1, k, universe)
    u = model.cell_uncertainty(universe)
    m = mu.mean(axis=1)
    rm = np.maximum(np.asarray(W @ m).ravel(), 1e-12)
    return ScoredRamps(days, int(k), float(kappa), universe, W, y, mu, a_cell + u,
                       a_ring + np.asarray(W @ (m ** 2 * u)).ravel() / rm ** 2, cats, lam, profile,
                       (ci[known], ti[known], ki[known], n[known]), min_observed=int(min_observed))


def select_ramp_alerts(sr: ScoredRamps, alpha: float = 0.05, t: int = -1, dedupe: bool = True,
                       top_drivers: int = 3) -> pd.DataFrame:
    """Ramp alerts alive after day index ``t``: BH at ``alpha`` per family (cells; disks, local maxima of
    the disk score), each with its run (onset → day t), observed / expected over the run and a sentence.
    With ``dedupe`` a disk must stay significant without the cells that alert alone."""
    t = t % sr.days.size
    hexes = _HexNames(sr.cells)

    def day(i: int) -> dt.date:
        return np.datetime64(int(sr.days[i]), "D").astype(dt.date)

    res = int(h3.get_resolution(hexes[0])) if sr.cells.size else -1
    rows: list[dict] = []

    def emit(i: int, members: np.ndarray, p, score, q, onset, y, mu, family: str):
        first = int(onset)
        drv = sr.drivers(members, first, t, top_drivers)
        n_days = t - first + 1
        n_rising = int((sr.y[members, first:t + 1].sum(axis=1) > sr.mu[members, first:t + 1].sum(axis=1)).sum())
        yy, mm = int(round(y)), float(mu)
        rows.append({"kind": "ramp", "cell": hexes[i], "resolution": res, "window_start": day(first),
                     "window_end": day(t), "observed": yy, "expected": mm, "score": float(score),
                     "p_value": float(p), "q_value": float(q), "category_code": None, "n_cells": int(members.size),
                     "drivers": drv,
                     "sentence_zh": _sentence("ramp", hexes[i], day(first), day(t), n_days, yy, mm, drv,
                                              n_cells=int(members.size), n_rising=n_rising), "family": family})

    p_c, s_c, on_c, y_c, m_c = sr.cell_tests(t)
    q_c = bh_qvalues(p_c)
    cell_hit = fdr_bh(p_c, alpha)
    for i in np.flatnonzero(cell_hit):
        emit(int(i), np.array([i]), p_c[i], s_c[i], q_c[i], on_c[i], y_c[i], m_c[i], "ramp_cell")
    p_r, s_r, on_r, y_r, m_r = sr.ring_tests(t)
    q_r = bh_qvalues(p_r)
    ring_hit = fdr_bh(p_r, alpha)
    cand = np.flatnonzero(ring_hit & _local_max(sr.W, s_r, y_r - m_r))
    if dedupe and cand.size and cell_hit.any():
        S_ex, _ = sr.ring_paths(keep=~cell_hit, rows=cand)
        cand = cand[cusum_pvalue(S_ex[:, t]) <= _bh_cut(p_r, ring_hit)]
    for i in cand:
        emit(int(i), sr.W[i].indices, p_r[i], s_r[i], q_r[i], on_r[i], y_r[i], m_r[i], "ramp_neighbourhood")
    out = pd.DataFrame(rows, columns=[c for c in ALERT_COLUMNS if c != "ratio"])
    out.insert(ALERT_COLUMNS.index("ratio"), "ratio", out["observed"] / out["expected"].clip(lower=1e-9))
    return out.sort_values(["score", "observed"], ascending=False, kind="stable").reset_index(drop=True)


def ramp_alerts(panel: pd.DataFrame, end_date, monitor_days: int = 28, k: int = 1, alpha: float = 0.05, *,
                kappa: float = 1.5, model: ExpectedCounts | None = None, min_observed: int = 3,
                top_drivers: int = 3, cells=None) -> pd.DataFrame:
    """Slow build-ups ("持续上升") still running at ``end_date``: an NB CUSUM for a ``kappa``-fold rise
    (:mod:`models.cusum`) per cell and per k-ring disk over the ``monitor_days`` days ending at
    ``end_date``, against expected counts fitted on the history *before* that period; p = exp(−S)
    (Ville's bound), BH at ``alpha`` per family. Rows in the layout of :func:`score_window` with
    ``kind = "ramp"``, ``window_start`` = the estimated onset, observed / expected summed over the run."""
    end = int(day_numbers(end_date))
    start = end - int(monitor_days) + 1
    est, win, _ = fit_before(panel, start, end, k=k, model=model, by_category=None, cells=cells,
                             period="monitoring period")
    sr = score_ramps(est, win, end, monitor_days, k=k, kappa=kappa, min_observed=min_observed, cells=cells)
    return select_ramp_alerts(sr, alpha=alpha, top_drivers=top_drivers)

