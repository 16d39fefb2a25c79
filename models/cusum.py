"""One-sided negative-binomial CUSUM for slow build-ups ("持续上升"), after Höhle & Paul (2008).

For a series of daily counts ``y_t`` with in-control expectation ``mu_t`` and NB dispersion ``alpha_t``
(``Var = mu + alpha mu²``), the out-of-control hypothesis is a multiplicative shift of the mean by
``kappa`` (default 1.5). The log-likelihood ratio of one day, with ``r = 1/alpha``, is::

    l_t = y_t log(kappa) + (y_t + r) log((r + mu_t) / (r + kappa mu_t))      (Poisson: y log kappa − (kappa−1) mu)

and the CUSUM is ``S_t = max(0, S_{t−1} + l_t)``, ``S_0 = 0``. ``S_t`` is the largest log-likelihood ratio of
"the rate has been ``kappa``× since some onset" over all onsets; the estimated onset is the day after the
last reset to 0.

**Calibration.** Under the in-control NB the exponentiated partial sums ``exp(Σ_{j>k} l_j)`` (k going
backwards from t) form a non-negative martingale of mean 1, so by Ville's inequality
``P(S_t ≥ h) ≤ exp(−h)`` for *any* t and any (time-varying) ``mu_t``: ``p = exp(−S_t)`` is a valid
(conservative: it ignores the overshoot and the reflection at 0) p-value that BH-FDR can take, and
``h = log(1/level)`` is a threshold with per-series, per-day false-alarm probability ≤ ``level``.
:func:`simulate_in_control` gives the exact in-control distribution by simulation, to check it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["cusum_pvalue", "cusum_threshold", "nb_cusum", "nb_llr", "simulate_in_control"]


def nb_llr(y, mu, alpha, kappa: float = 1.5) -> np.ndarray:
    """Per-observation log-likelihood ratio of NB(kappa·mu, alpha) against NB(mu, alpha) (broadcasting)."""
    if kappa <= 1.0:
        raise ValueError("kappa must be > 1 (an upward shift)")
    y, mu, a = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.maximum(np.asarray(mu, dtype=np.float64), 1e-12),
                                   np.maximum(np.asarray(alpha, dtype=np.float64), 0.0))
    lk = np.log(kappa)
    pois = a <= 1e-9
    r = 1.0 / np.where(pois, 1.0, a)
    nb = y * lk + (y + r) * (np.log1p(mu / r) - np.log1p(kappa * mu / r))
    return np.where(pois, y * lk - (kappa - 1.0) * mu, nb)


def nb_cusum(y, mu, alpha=0.0, kappa: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """CUSUM paths of series in rows (series × days): ``(S, onset)`` with ``S[:, t]`` the statistic after
    day t and ``onset[:, t]`` the estimated first day (column index) of the current run (−1 when
    ``S[:, t] == 0``). ``alpha`` broadcasts against ``y`` (one value, per series ``(n, 1)``, or per day)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    llr = nb_llr(y, np.broadcast_to(mu, y.shape), np.broadcast_to(alpha, y.shape), kappa)
    n, T = y.shape
    S = np.zeros((n, T))
    onset = np.full((n, T), -1, dtype=np.int64)
    s = np.zeros(n)
    start = np.full(n, -1, dtype=np.int64)
    for t in range(T):
        s = np.maximum(s + llr[:, t], 0.0)
        start = np.where(s > 0, np.where(start < 0, t, start), -1)
        S[:, t] = s
        onset[:, t] = start
    return S, onset


def cusum_pvalue(S) -> np.ndarray:
    """Ville/Wald bound ``P(S ≥ s) ≤ exp(−s)`` under the in-control NB, as a p-value in (0, 1]."""
    return np.exp(-np.maximum(np.asarray(S, dtype=np.float64), 0.0))


def cusum_threshold(level: float) -> float:
    """Threshold h with in-control ``P(S_t ≥ h) ≤ level`` per series and day (``h = log(1/level)``)."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    return float(-np.log(level))


def simulate_in_control(mu, alpha=0.0, kappa: float = 1.5, n_sim: int = 2000,
                        random_state: int | np.random.Generator | None = 0) -> np.ndarray:
    """``S`` at the last day of ``n_sim`` series simulated from the in-control NB with daily means ``mu``
    (1-D, one value per day) and dispersion ``alpha`` — the exact null distribution the bound covers."""
    rng = np.random.default_rng(random_state)
    mu = np.maximum(np.asarray(mu, dtype=np.float64).ravel(), 1e-12)
    a = float(alpha)
    if a <= 1e-9:
        y = rng.poisson(mu[None, :], size=(n_sim, mu.size))
    else:
        y = rng.poisson(rng.gamma(1.0 / a, a * mu[None, :], size=(n_sim, mu.size)))
    return nb_cusum(y, mu[None, :], a, kappa)[0][:, -1]
