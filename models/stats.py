"""Small vectorised statistics used by the hotspot models: BH-FDR and the Mann–Kendall trend test."""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["fdr_bh", "mann_kendall", "norm_two_sided_p"]


def norm_two_sided_p(z) -> np.ndarray:
    """Two-sided standard-normal p-value ``2·P(Z > |z|)`` (NaN stays NaN), computed in one buffer.

    (The normal CDF is the single most expensive step of a whole-cube Gi*; scipy's ``ndtr`` holds the
    GIL, so threading it does not help.)
    """
    out = np.array(z, dtype=np.float64, copy=True)
    np.abs(out, out=out)
    np.negative(out, out=out)
    special.ndtr(out, out=out)
    out *= 2.0
    return out


def fdr_bh(pvalues, alpha: float = 0.05, axis: int | None = None) -> np.ndarray:
    """Benjamini–Hochberg false-discovery-rate control; returns the boolean "reject" mask.

    ``pvalues`` may have any shape. With ``axis=None`` all entries form one family; with an integer
    ``axis`` each 1-D slice along that axis is its own family (e.g. ``axis=0`` on a cells × slices
    array corrects every time slice separately). NaNs are not tests: they are never rejected and do
    not count in the family size ``m``.

    Rule: with the ``m`` finite p-values sorted, find the largest ``k`` with ``p_(k) <= k/m · alpha``
    and reject every p-value ``<= p_(k)`` (ties at the cut-off are all rejected).
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim == 0:
        return np.asarray(bool(np.isfinite(p) and p <= alpha))
    if axis is None:
        return _bh_last(p.reshape(1, -1), alpha).reshape(p.shape)
    moved = np.moveaxis(p, axis, -1)
    out = _bh_last(moved.reshape(-1, moved.shape[-1]), alpha).reshape(moved.shape)
    return np.moveaxis(out, -1, axis)


def _bh_last(p: np.ndarray, alpha: float) -> np.ndarray:
    """BH along the last axis of a 2-D array (rows are families).

    Only p-values ``<= alpha`` can pass ``p_(k) <= k/m · alpha``, and every other p-value is larger than
    all of them, so a candidate's rank among the candidates is its rank in the family: sorting just the
    candidates (typically a few per cent) is enough.
    """
    n_rows = p.shape[0]
    if p.size == 0:
        return np.zeros(p.shape, dtype=bool)
    finite = np.isfinite(p)
    m = finite.sum(axis=1)
    with np.errstate(invalid="ignore"):
        cand = p <= alpha  # False for NaN
    r, c = np.nonzero(cand)  # row-major: r is already sorted
    if r.size == 0:
        return cand
    pv = p[r, c]
    order = np.lexsort((pv, r))
    r, pv = r[order], pv[order]
    first = np.searchsorted(r, np.arange(n_rows))
    rank = np.arange(1, r.size + 1) - first[r]
    ok = pv <= rank / m[r] * alpha
    cut = np.full(n_rows, -np.inf)
    np.maximum.at(cut, r[ok], pv[ok])
    return cand & (p <= cut[:, None])


def _mk_s(y: np.ndarray, block: int = 65_536) -> np.ndarray:
    """``S = Σ_{i<j} sign(y_j − y_i)`` per row: T−1 vector comparisons on a time-major copy, in blocks."""
    n_series, n = y.shape
    s = np.zeros(n_series, dtype=np.int64)
    for a in range(0, n_series, block):
        yt = np.ascontiguousarray(y[a:a + block].T)  # times × series: each step compares whole rows
        acc = s[a:a + block]
        for i in range(n - 1):
            later, now = yt[i + 1:], yt[i]
            acc += ((later > now).view(np.int8) - (later < now).view(np.int8)).sum(axis=0, dtype=np.int64)
    return s


def mann_kendall(y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mann–Kendall monotonic-trend test on each row of ``y`` (n_series × n_times), vectorised.

    Returns ``(tau, z, p)`` per row:

    * ``S = Σ_{i<j} sign(y_j − y_i)``;
    * ``tau`` is Kendall's tau-b of ``y`` against time (time has no ties), i.e.
      ``S / sqrt(n0 · (n0 − n1))`` with ``n0 = n(n−1)/2`` and ``n1 = Σ t(t−1)/2`` over tie groups — the
      value ``scipy.stats.kendalltau(np.arange(n), y)`` gives (and tau-a when there are no ties);
    * ``Var(S) = [n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18`` (tie-corrected);
    * ``z = (S − sign(S)) / sqrt(Var(S))`` (continuity correction) and two-sided normal ``p``.

    Rows with fewer than 3 points, any NaN, or zero variance (all values tied) get tau/z = 0 for the
    constant case and NaN for the others, with p = 1 / NaN respectively.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise ValueError("y must be 1-D or 2-D (n_series × n_times)")
    n_series, n = y.shape
    tau = np.full(n_series, np.nan)
    z = np.full(n_series, np.nan)
    p = np.full(n_series, np.nan)
    if n < 3 or n_series == 0:
        return tau, z, p
    ok = np.isfinite(y).all(axis=1)
    yy = y[ok]

    s = _mk_s(yy)

    # tie groups per row: sort, mark run starts, count run lengths with one bincount over all rows
    srt = np.sort(yy, axis=1)
    start = np.ones_like(srt, dtype=bool)
    start[:, 1:] = srt[:, 1:] != srt[:, :-1]
    gid = np.cumsum(start.ravel()) - 1
    t = np.bincount(gid).astype(np.float64)
    row_of_group = np.repeat(np.arange(yy.shape[0]), start.sum(axis=1))
    tie_var = np.bincount(row_of_group, weights=t * (t - 1) * (2 * t + 5), minlength=yy.shape[0])
    tie_pairs = np.bincount(row_of_group, weights=t * (t - 1) / 2, minlength=yy.shape[0])

    n0 = n * (n - 1) / 2.0
    var_s = (n * (n - 1) * (2 * n + 5) - tie_var) / 18.0
    denom = np.sqrt(n0 * (n0 - tie_pairs))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau_ok = np.where(denom > 0, s / denom, 0.0)
        z_ok = np.where(var_s > 0, (s - np.sign(s)) / np.sqrt(var_s), 0.0)
    tau[ok] = tau_ok
    z[ok] = z_ok
    p[ok] = norm_two_sided_p(z_ok)
    return tau, z, p
