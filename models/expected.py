"""Expected counts per H3 cell for a day or a window: the baseline of the "unusual now" alerts.

:class:`ExpectedCounts` is a multiplicative Poisson model, fitted in one pass of vectorised group-bys::

    mu[cell, category, day] = lambda[cell, category] * T[category](day)

* ``T[category](day)`` — the time profile: a Poisson GLM (IRLS, numpy) on the *city-wide* daily totals
  of the category with day-of-week dummies, a linear trend, yearly Fourier terms, the wage-arrears
  season (1 November → Spring Festival: a step plus a ramp that peaks on the festival) and the Spring
  Festival / National Day holiday weeks. Each term enters only when the history can identify it
  (trend ≥ ``min_trend_weeks``, season ≥ ``min_season_weeks``). A category's coefficients are shrunk
  toward the all-category profile (Gaussian prior of precision ``profile_prior_strength``), so a
  sparse category borrows the common shape and a dense one (e.g. 拖欠农民工工资 in winter) shows
  its own season; :meth:`ExpectedCounts.season_effects` reports them.
  Because the model is separable (cell × time), the GLM on daily totals *is* the Poisson maximum
  likelihood of the full cell × day panel for the time terms: no 30k × 730 design matrix is built.
* ``lambda[cell, category]`` — the per-day level in the profile's units (``T`` averages 1 over the
  history, recency-weighted with half-life ``level_halflife_weeks``): the cell's total rate, shrunk
  by empirical Bayes (gamma–Poisson, strength estimated by moments) toward a prior built from the
  k-ring neighbours (pooled toward the parent cell ``parent_levels`` resolutions up), times the cell's
  category mix, shrunk toward the neighbourhood's and the city's mix (Dirichlet, ``mix_prior_strength``).
  A cell with no history (or a new cell) still gets a small expected count from its surroundings.
* Overdispersion: :meth:`ExpectedCounts.dispersion` estimates a global negative-binomial ``alpha``
  (``Var = mu + alpha mu^2``) by moments on the history cut into blocks as long as the scoring window,
  for cells and for k-ring sums, and :meth:`ExpectedCounts.dispersion_per_cell` pools each cell's own
  moment estimate with it (cells with a history of bursts get a larger alpha);
  :meth:`ExpectedCounts.cell_uncertainty` adds each cell's parameter uncertainty (``1/shape`` of its
  gamma posterior) for the predictive p-values.

Input is a long panel ``[cell (uint64 H3), day (date), n, optional category_code]`` with one row per
(cell, day[, category]) holding events; absent rows are zeros. Days inside a run of at least ``gap_days``
days without a single event city-wide are treated as *not observed* (e.g. a missing month), never as
zeros.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from geodata.h3cells import cell_resolutions, parent_cells
from models.hexgrid import as_cells, kring_weights

__all__ = ["SPRING_FESTIVAL", "ExpectedCounts", "day_numbers", "wage_season"]

# 春节 (first day of the lunar year). The wage-arrears season runs from 1 November to the festival.
SPRING_FESTIVAL = {
    2010: "2010-02-14", 2011: "2011-02-03", 2012: "2012-01-23", 2013: "2013-02-10", 2014: "2014-01-31",
    2015: "2015-02-19", 2016: "2016-02-08", 2017: "2017-01-28", 2018: "2018-02-16", 2019: "2019-02-05",
    2020: "2020-01-25", 2021: "2021-02-12", 2022: "2022-02-01", 2023: "2023-01-22", 2024: "2024-02-10",
    2025: "2025-01-29", 2026: "2026-02-17", 2027: "2027-02-06", 2028: "2028-01-26", 2029: "2029-02-13",
    2030: "2030-02-03", 2031: "2031-01-23", 2032: "2032-02-11", 2033: "2033-01-31", 2034: "2034-02-19",
    2035: "2035-02-08",
}
_EPOCH = np.datetime64("1970-01-01", "D")
_SF_DAYS = {y: int((np.datetime64(d, "D") - _EPOCH).astype(np.int64)) for y, d in SPRING_FESTIVAL.items()}
_NOV1_DAYS = {y: int((np.datetime64(f"{y - 1}-11-01", "D") - _EPOCH).astype(np.int64)) for y in SPRING_FESTIVAL}
_TOTAL = "__all__"
_CATEGORY_PRIOR = 20.0  # weight (units of Σ mu²) of the pooled alpha in a category's own alpha


def day_numbers(days) -> np.ndarray:
    """Days since 1970-01-01 (int64) of dates, datetimes or ISO strings (time of day is dropped)."""
    arr = np.asarray(days)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64)
    t = pd.to_datetime(pd.Series(arr.ravel()) if arr.ndim else pd.Series([arr.item()]))
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_localize(None)
    out = t.to_numpy().astype("datetime64[D]").astype(np.int64)
    return out if arr.ndim else out.reshape(())


def wage_season(days) -> tuple[np.ndarray, np.ndarray]:
    """(in-season indicator, ramp 0→1) of the wage-arrears season, 1 November → Spring Festival (excl.)."""
    d = day_numbers(days)
    ind = np.zeros(d.shape, dtype=np.float64)
    ramp = np.zeros(d.shape, dtype=np.float64)
    for y, sf in _SF_DAYS.items():
        s = _NOV1_DAYS[y]
        inside = (d >= s) & (d < sf)
        if inside.any():
            ind[inside] = 1.0
            ramp[inside] = (d[inside] - s) / max(sf - s, 1)
    return ind, ramp


def _holiday_sf(d: np.ndarray) -> np.ndarray:
    """Spring Festival holiday: eve to the sixth day of the new year."""
    out = np.zeros(d.shape, dtype=np.float64)
    for sf in _SF_DAYS.values():
        out[(d >= sf - 1) & (d <= sf + 6)] = 1.0
    return out


def _holiday_national(d: np.ndarray) -> np.ndarray:
    """National Day golden week, 1–7 October."""
    dt = d.astype("datetime64[D]")
    month = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (dt - dt.astype("datetime64[M]")).astype(np.int64) + 1
    return ((month == 10) & (dom <= 7)).astype(np.float64)


def _poisson_irls(X: np.ndarray, y: np.ndarray, prior_mean: np.ndarray, prior_prec: np.ndarray,
                  max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Penalised Poisson regression (log link): maximise Σ(y η − e^η) − ½ Σ prec (β − prior)²."""
    beta = prior_mean.astype(np.float64).copy()
    P = np.diag(prior_prec.astype(np.float64))

    def objective(b: np.ndarray) -> float:
        eta = np.clip(X @ b, -50.0, 50.0)
        return float(y @ eta - np.exp(eta).sum() - 0.5 * ((b - prior_mean) ** 2 * prior_prec).sum())

    cur = objective(beta)
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -50.0, 50.0)
        mu = np.exp(eta)
        grad = X.T @ (y - mu) - prior_prec * (beta - prior_mean)
        H = X.T @ (X * mu[:, None]) + P
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, grad, rcond=None)[0]
        t = 1.0
        while True:
            new = beta + t * step
            val = objective(new)
            if val >= cur - 1e-12 or t < 1e-6:
                break
            t *= 0.5
        beta, gain, cur = new, val - cur, val
        if abs(gain) < tol * (1.0 + abs(cur)):
            break
    return beta


def _factorize_sorted(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, index of each value) by hashing — much faster than ``np.unique`` on
    millions of strings. Missing categories become ``"__unknown__"``; uint64 stays uint64."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        uniq = values.cat.categories.astype(str).to_numpy()
    else:
        codes, uniq = pd.factorize(np.asarray(values), use_na_sentinel=True)
        codes = codes.astype(np.int64)
        uniq = np.asarray(uniq)
    if (codes < 0).any():
        uniq = np.concatenate([uniq.astype(object), np.array(["__unknown__"], dtype=object)])
        codes = np.where(codes < 0, uniq.size - 1, codes)
    if uniq.dtype.kind in ("O", "U", "S"):
        uniq = uniq.astype(str)
    used = np.bincount(codes, minlength=uniq.size) > 0
    order = np.argsort(uniq, kind="stable")
    order = order[used[order]]
    remap = np.full(uniq.size, -1, dtype=np.int64)
    remap[order] = np.arange(order.size)
    return uniq[order], remap[codes]


def _dm_concentration(X: np.ndarray, P: np.ndarray, cap: float = 1000.0) -> float:
    """Dirichlet-multinomial concentration ``c`` of count rows ``X`` around proportions ``P`` (rows or one
    row), by moments: ``E[Σ_k x_k(x_k − 1)] = n(n − 1)(c Σ_k p_k² + 1)/(c + 1)``; ``cap`` when the rows
    are no more varied than multinomial draws."""
    n = X.sum(axis=1)
    S2 = n * (n - 1)
    ok = n >= 2
    if not ok.any():
        return cap
    L = float((X[ok] * (X[ok] - 1)).sum())
    Pq = np.broadcast_to(P, X.shape)[ok]
    S2q = float((S2[ok] * (Pq ** 2).sum(axis=1)).sum())
    S2s = float(S2[ok].sum())
    if L <= S2q or L >= S2s:
        return cap if L <= S2q else 0.0
    return float(min(cap, max(0.0, (S2s - L) / (L - S2q))))


class ExpectedCounts(BaseEstimator):
    """Expected counts per cell (and category) for a day or a window; see the module docstring.

    Parameters
    ----------
    history_weeks : weeks of history used, ending at ``end`` (default the last day of the panel).
    random_state : reserved (the fit is deterministic); kept for API symmetry with the forecasters.
    k : k-ring radius of the neighbourhood prior (and the default for :meth:`dispersion`).
    parent_levels : the parent cell of the prior is ``parent_levels`` resolutions coarser.
    level_halflife_weeks : recency half-life of the levels (``None``: all history weighs the same).
    by_category : use ``category_code`` when the panel has it (category profiles, mixes, drivers).
    min_category_events : categories with fewer history events use the all-category time profile.
    profile_prior_strength : precision of the prior pulling a category's profile to the common one.
    mix_prior_strength : pseudo-events of the neighbourhood category mix in each cell's mix.
    parent_pseudo_cells : weight (in neighbour cells) of the parent-cell rate in the neighbour prior.
    fourier_order : yearly harmonics (when ≥ ``min_season_weeks`` of history).
    min_season_weeks, min_trend_weeks : history needed before season / trend terms enter.
    gap_days : runs of at least this many days with no event city-wide are unobserved (a data gap).
    dispersion_prior_strength : weight (in units of Σ mu² over history blocks) of the global NB alpha
        in each cell's own dispersion (:meth:`dispersion_per_cell`).
    """

    def __init__(self, history_weeks: int = 104, random_state: int | None = 0, *, k: int = 1,
                 parent_levels: int = 2, level_halflife_weeks: float | None = 26.0, by_category: bool = True,
                 min_category_events: int = 30, profile_prior_strength: float = 20.0,
                 mix_prior_strength: float = 10.0, parent_pseudo_cells: float = 2.0, fourier_order: int = 2,
                 min_season_weeks: int = 52, min_trend_weeks: int = 26, gap_days: int = 7,
                 dispersion_prior_strength: float = 20.0):
        self.history_weeks = history_weeks
        self.random_state = random_state
        self.k = k
        self.parent_levels = parent_levels
        self.level_halflife_weeks = level_halflife_weeks
        self.by_category = by_category
        self.min_category_events = min_category_events
        self.profile_prior_strength = profile_prior_strength
        self.mix_prior_strength = mix_prior_strength
        self.parent_pseudo_cells = parent_pseudo_cells
        self.fourier_order = fourier_order
        self.min_season_weeks = min_season_weeks
        self.min_trend_weeks = min_trend_weeks
        self.gap_days = gap_days
        self.dispersion_prior_strength = dispersion_prior_strength

    # ------------------------------------------------------------------------------------ design
    def _design(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.int64)
        cols = [np.ones(d.size)]
        terms = self.terms_
        if "dow" in terms:
            dow = (d + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0 is the baseline
            cols += [(dow == j).astype(np.float64) for j in range(1, 7)]
        if "trend" in terms:
            cols.append((d - self.t0_) / 365.25)
        if "fourier" in terms:
            ang = 2.0 * np.pi * d / 365.2425
            for h in range(1, self.fourier_order + 1):
                cols += [np.sin(h * ang), np.cos(h * ang)]
        if "wage" in terms:
            ind, ramp = wage_season(d)
            cols += [ind, ramp]
        if "sf_holiday" in terms:
            cols.append(_holiday_sf(d))
        if "national_day" in terms:
            cols.append(_holiday_national(d))
        return np.column_stack(cols)

    def _choose_terms(self, obs_days: np.ndarray) -> list[str]:
        span = int(obs_days.max() - obs_days.min() + 1) if obs_days.size else 0
        terms = []
        if span >= 14:
            terms.append("dow")
        if span >= 7 * self.min_trend_weeks:
            terms.append("trend")
        if span >= 7 * self.min_season_weeks:
            if self.fourier_order > 0:
                terms.append("fourier")
            ind, _ = wage_season(obs_days)
            if ind.sum() >= 28 and (1 - ind).sum() >= 28:
                terms.append("wage")
        for name, fn in (("sf_holiday", _holiday_sf), ("national_day", _holiday_national)):
            x = fn(obs_days)
            if x.sum() >= 3 and (1 - x).sum() >= 14:
                terms.append(name)
        return terms

    # ------------------------------------------------------------------------------------ fit
    def fit(self, panel: pd.DataFrame, y=None, *, end=None, cells=None, categories=None) -> ExpectedCounts:
        """Fit on the panel's days in ``(end − history_weeks, end]`` (``end`` default: last panel day).

        ``cells`` adds cells to the universe (e.g. the study area, or the cells of a window to score);
        ``categories`` adds category codes unseen in the history (they get the city's floor mix).
        """
        for col in ("cell", "day", "n"):
            if col not in panel.columns:
                raise ValueError(f"panel needs column {col!r}")
        day = day_numbers(panel["day"].to_numpy())
        end_d = int(day.max()) if end is None else int(day_numbers(end))
        start_d = end_d - 7 * int(self.history_weeks) + 1
        keep = (day >= start_d) & (day <= end_d)
        if not keep.any():
            raise ValueError("no panel rows in the history window")
        day = day[keep]
        n = panel["n"].to_numpy()[keep].astype(np.float64)
        cell_raw = as_cells(panel["cell"].to_numpy()[keep])

        use_cat = bool(self.by_category) and "category_code" in panel.columns
        if use_cat:
            cat_codes, cat_idx = _factorize_sorted(panel["category_code"][keep])
            if categories is not None:
                extra = np.setdiff1d(np.asarray([str(c) for c in categories]), cat_codes)
                if extra.size:
                    merged = np.concatenate([cat_codes, extra])
                    order = np.argsort(merged, kind="stable")
                    inv = np.empty_like(order)
                    inv[order] = np.arange(order.size)
                    cat_idx = inv[cat_idx]
                    cat_codes = merged[order]
        else:
            cat_codes = np.array([_TOTAL])
            cat_idx = np.zeros(day.size, dtype=np.int64)
        K = cat_codes.size

        universe = np.sort(pd.unique(cell_raw))  # sorted distinct cells by hashing (np.unique sorts every row)
        if cells is not None:
            universe = np.union1d(universe, as_cells(cells))
        universe = universe[universe != 0]
        cell_idx = np.searchsorted(universe, cell_raw)
        ok = (cell_idx < universe.size) & (universe[np.minimum(cell_idx, universe.size - 1)] == cell_raw)
        cell_idx, day, n, cat_idx = cell_idx[ok], day[ok], n[ok], cat_idx[ok]

        # observed days: from the first event day (or start) to end, minus long city-wide gaps
        first = max(start_d, int(day.min()))
        D = end_d - first + 1
        off = day - first
        tot_day = np.bincount(off, weights=n, minlength=D)
        observed = np.ones(D, dtype=bool)
        empty = tot_day == 0
        if self.gap_days and empty.any():
            edges = np.diff(np.concatenate([[0], empty.astype(np.int8), [0]]))
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                if e - s >= self.gap_days:
                    observed[s:e] = False
        all_days = np.arange(first, end_d + 1, dtype=np.int64)
        obs_days = all_days[observed]
        if obs_days.size == 0:
            raise ValueError("no observed days in the history window")

        # recency weights
        if self.level_halflife_weeks:
            w = np.power(0.5, (end_d - all_days) / (7.0 * float(self.level_halflife_weeks)))
        else:
            w = np.ones(D)
        w = np.where(observed, w, 0.0)
        self.w_sum_ = float(w.sum())
        self.w_var_factor_ = float((w ** 2).sum() / w.sum())  # Var of a weighted count ≈ this × its mean

        # time profiles
        self.first_, self.end_, self.t0_ = first, end_d, float(np.average(all_days, weights=w))
        self.terms_ = self._choose_terms(obs_days)
        X = self._design(obs_days)
        p = X.shape[1]
        z_cat = np.bincount(cat_idx * D + off, weights=n, minlength=K * D).reshape(K, D)[:, observed]
        z_tot = z_cat.sum(axis=0)
        prec0 = np.r_[0.0, np.full(p - 1, 1.0)]
        beta0 = np.zeros(p)
        beta0[0] = np.log(max(z_tot.mean(), 1e-3))
        beta_tot = _poisson_irls(X, z_tot, beta0, prec0)
        betas = np.tile(beta_tot, (K, 1))
        cat_events = z_cat.sum(axis=1)
        for j in range(K):
            if K == 1:
                break
            if cat_events[j] >= self.min_category_events:
                prior = beta_tot.copy()
                prior[0] += np.log(cat_events[j] / max(z_tot.sum(), 1e-9))
                prec = np.r_[0.0, np.full(p - 1, float(self.profile_prior_strength))]
                betas[j] = _poisson_irls(X, z_cat[j], prior, prec)
        # normalise: recency-weighted mean of T over observed days is 1
        eta = X @ betas.T  # obs_days × K
        wo = w[observed]
        self.logc_ = np.log((wo[:, None] * np.exp(eta - eta.max(axis=0))).sum(axis=0) / wo.sum()) + eta.max(axis=0)
        self.beta_ = betas
        self.beta_total_ = beta_tot
        self.categories_ = cat_codes
        self.category_events_ = cat_events
        self.observed_days_ = obs_days

        # levels
        Yw = np.bincount(cell_idx * K + cat_idx, weights=n * w[off], minlength=universe.size * K)
        Yw = Yw.reshape(universe.size, K)
        self.cells_ = universe
        self.resolution_ = int(cell_resolutions(universe[:1])[0])
        self._Yw = Yw
        self._fit_levels()

        # rows kept for the dispersion estimate (summed over categories later by bincount)
        self._hist = (cell_idx.astype(np.int64), day.astype(np.int64), n, cat_idx.astype(np.int64))
        self._disp_cache: dict[tuple[int, int], tuple] = {}
        return self

    # ------------------------------------------------------------------------------------ levels
    def _priors(self, cells: np.ndarray, Yw: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """Prior history count per cell (neighbours pooled toward the parent) and the neighbourhood mix."""
        k = int(self.k)
        Y = Yw.sum(axis=1)
        W1 = kring_weights(cells, k, include_self=False)
        n_ring = 3 * k * (k + 1)
        ring_sum = W1 @ Y
        res = int(self.resolution_)
        lev = min(int(self.parent_levels), res)
        if lev > 0:
            par = parent_cells(cells, res - lev)
            uniq, inv = np.unique(par, return_inverse=True)
            par_mean = np.bincount(inv, weights=Y, minlength=uniq.size)[inv] / float(7 ** lev)
        else:
            par_mean = Y.copy()
        kp = float(self.parent_pseudo_cells)
        # ½ pseudo-event: even an empty district expects *something*, so one event is never infinitely surprising
        e0 = (ring_sum + kp * par_mean + 0.5) / (n_ring + kp)
        Wd = W1 + sp.identity(cells.size, format="csr")
        ring_mix = np.asarray(Wd @ Yw)
        return e0, ring_mix, Wd.tocsr()

    def _levels(self, cells: np.ndarray, Yw: np.ndarray, a: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """(lambda[cell, category] per day, gamma posterior shape per cell, prior shape a)."""
        W = self.w_sum_
        Y = Yw.sum(axis=1)
        e0, ring_mix, _ = self._priors(cells, Yw)
        if a is None:
            # moments: E[(Y − e)²] = φ e + τ² e²  →  τ² ; prior shape a = 1/τ²
            phi = self.w_var_factor_
            num = ((Y - e0) ** 2 - phi * Y).sum()
            tau2 = float(np.clip(num / max((e0 ** 2).sum(), 1e-12), 0.05, 20.0))
            a = 1.0 / tau2
        lam_tot = (Y + a) / (W + a / (e0 / W))
        city = Yw.sum(axis=0)
        K = Yw.shape[1]
        pi_city = (city + 0.5) / (city.sum() + 0.5 * K)
        # Dirichlet strengths estimated from the data (never weaker than the defaults): a neighbourhood
        # missing a category in a short history is mostly sampling, not evidence that it never occurs there
        c0 = max(5.0, _dm_concentration(ring_mix, pi_city[None, :]))
        pi_ring = (ring_mix + c0 * pi_city) / (ring_mix.sum(axis=1, keepdims=True) + c0)
        b = max(float(self.mix_prior_strength), _dm_concentration(Yw, pi_ring)) if K > 1 else float(self.mix_prior_strength)
        pi = (Yw + b * pi_ring) / (Y[:, None] + b)
        return lam_tot[:, None] * pi, a + Y, a

    def _fit_levels(self) -> None:
        self.lam_, self.shape_, self.prior_shape_ = self._levels(self.cells_, self._Yw)

    def _rates_for(self, cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cells, lambda rows, posterior shapes) for any cells; unknown cells get their prior."""
        c = as_cells(cells)
        pos = np.searchsorted(self.cells_, c)
        pos_c = np.minimum(pos, self.cells_.size - 1)
        known = self.cells_[pos_c] == c
        if known.all():
            return c, self.lam_[pos_c], self.shape_[pos_c]
        new = np.unique(c[~known])
        union = np.concatenate([self.cells_, new])
        Yw = np.vstack([self._Yw, np.zeros((new.size, self._Yw.shape[1]))])
        lam, shape, _ = self._levels(union, Yw, a=self.prior_shape_)
        order = np.argsort(union, kind="stable")
        spos = order[np.searchsorted(union[order], c)]
        return c, lam[spos], shape[spos]

    # ------------------------------------------------------------------------------------ predict
    def time_profile(self, days) -> pd.DataFrame:
        """``T[category](day)``: multiplicative time factor per day (rows) and category (columns)."""
        d = day_numbers(days).ravel()
        T = np.exp(self._design(d) @ self.beta_.T - self.logc_[None, :])
        return pd.DataFrame(T, index=pd.to_datetime(d.astype("datetime64[D]")), columns=self.categories_)

    def window_days(self, window_end, window_days: int = 7) -> np.ndarray:
        e = int(day_numbers(window_end))
        return np.arange(e - int(window_days) + 1, e + 1, dtype=np.int64)

    def expected_matrix(self, window_end, window_days: int = 7, cells=None) -> tuple[np.ndarray, np.ndarray]:
        """(cells, expected[cell, category]) summed over the window ``(window_end − window_days, window_end]``."""
        d = self.window_days(window_end, window_days)
        Tsum = np.exp(self._design(d) @ self.beta_.T - self.logc_[None, :]).sum(axis=0)
        c, lam, _ = self._rates_for(self.cells_ if cells is None else cells)
        return c, lam * Tsum[None, :]

    def predict(self, window_end, window_days: int = 7, cells=None, by_category: bool = False) -> pd.DataFrame:
        """Expected counts in the window per cell (``by_category``: per cell and category, long)."""
        c, mu = self.expected_matrix(window_end, window_days, cells)
        if not by_category:
            return pd.DataFrame({"cell": c, "expected": mu.sum(axis=1)})
        K = mu.shape[1]
        return pd.DataFrame({"cell": np.repeat(c, K), "category_code": np.tile(self.categories_, c.size),
                             "expected": mu.ravel()})

    def cell_uncertainty(self, cells=None) -> np.ndarray:
        """Extra NB dispersion per cell from the uncertainty of its level: 1 / gamma posterior shape."""
        _, _, shape = self._rates_for(self.cells_ if cells is None else cells)
        return 1.0 / shape

    # ------------------------------------------------------------------------------------ dispersion
    def dispersion(self, window_days: int = 7, k: int | None = None) -> tuple[float, float]:
        """Global NB ``alpha`` for window sums of one cell and of one k-ring disk (moments, history blocks).

        The history is cut into consecutive blocks of ``window_days`` ending at the last history day;
        blocks touching an unobserved day are skipped, and at most 4M / n_cells (≥ 4) of the most
        recent blocks are used. ``alpha = max(0, Σ[(y − mu)² − y] / Σ mu²)``.
        """
        g = self._dispersion(int(window_days), int(self.k if k is None else k))
        return g[0], g[1]

    def dispersion_per_cell(self, window_days: int = 7, k: int | None = None, cells=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell NB ``alpha`` of window sums, for the cell and for the disk centred on it: each cell's
        own moment estimate pooled with the global one, ``(S_c + κ α) / (M_c + κ)`` with
        ``S_c = Σ_b[(y − mu)² − y]``, ``M_c = Σ_b mu²`` over its history blocks and
        ``κ = dispersion_prior_strength`` — so a corner with a history of bursts (say, enforcement
        operations) is less surprising when it bursts again, while quiet cells keep the global value.
        Cells unknown to the model get the global values.

        With categories, the pull is not toward one city-wide value but toward what the cell's category
        mix implies: each category's own NB ``alpha_k`` (:meth:`dispersion_per_category`) gives a sum over
        independent categories ``Σ_k alpha_k mu_k² / (Σ_k mu_k)²``, rescaled so that its mu²-weighted
        mean over the city is the global alpha — a cell whose expected calls are mostly a bursty kind
        (officer-initiated traffic stops, say) is allowed bursts even before it has had one."""
        a_g, r_g, a_c, r_c, _ = self._dispersion(int(window_days), int(self.k if k is None else k))
        if cells is None:
            return a_c, r_c
        c = as_cells(cells)
        pos = np.minimum(np.searchsorted(self.cells_, c), self.cells_.size - 1)
        known = self.cells_[pos] == c
        return np.where(known, a_c[pos], a_g), np.where(known, r_c[pos], r_g)

    def dispersion_per_category(self, window_days: int = 7) -> np.ndarray:
        """NB ``alpha_k`` of one cell's window sums of each category (aligned with ``categories_``): moments
        over every history block of every cell, pooled toward the all-category value with a weight of 20
        (in units of Σ mu²), so a rare category keeps about the pooled value."""
        return self._dispersion(int(window_days), int(self.k))[4]

    def _dispersion(self, L: int, k: int, max_cells_blocks: int = 4_000_000):
        key = (L, k)
        if key in self._disp_cache:
            return self._disp_cache[key]
        ncell = self.cells_.size
        obs = np.zeros(self.end_ - self.first_ + 1, dtype=bool)
        obs[self.observed_days_ - self.first_] = True
        n_blocks = obs.size // L
        B_cap = max(4, int(max_cells_blocks // max(ncell, 1)))
        blocks = []
        for b in range(n_blocks):
            hi = obs.size - b * L
            if obs[hi - L:hi].all():
                blocks.append(b)
            if len(blocks) >= B_cap:
                break
        if len(blocks) < 2:
            out = (0.0, 0.0, np.zeros(ncell), np.zeros(ncell), np.zeros(self.categories_.size))
            self._disp_cache[key] = out
            return out
        blocks = np.asarray(blocks)
        cidx, day, n, kidx = self._hist
        b_of_day = (self.end_ - day) // L
        col = np.full(n_blocks + 1, -1, dtype=np.int64)
        col[blocks] = np.arange(blocks.size)
        bc = col[np.minimum(b_of_day, n_blocks)]
        sel = bc >= 0
        B = blocks.size
        Y = np.bincount(cidx[sel] * B + bc[sel], weights=n[sel], minlength=ncell * B).reshape(ncell, B)
        # time factor summed over each block: one design matrix for the days of every block
        d = (self.end_ - (blocks[:, None] + 1) * L + 1 + np.arange(L)[None, :]).ravel()
        Tb = np.exp(self._design(d) @ self.beta_.T - self.logc_[None, :]).reshape(B, L, -1).sum(axis=1).T
        mu = self.lam_ @ Tb
        kappa = float(self.dispersion_prior_strength)

        # per category: Σ over (cell, block) of (y − mu)² − y from the non-zero rows and Σ mu² in closed form
        K = self.categories_.size
        ckey = (cidx[sel] * B + bc[sel]) * K + kidx[sel]
        codes, uniq = pd.factorize(ckey)
        y_k = np.bincount(codes, weights=n[sel], minlength=uniq.size)
        kk, bb, cc = uniq % K, (uniq // K) % B, uniq // K // B
        m_k = self.lam_[cc, kk] * Tb[kk, bb]
        M_cat = (self.lam_ ** 2).sum(axis=0) * (Tb ** 2).sum(axis=1)
        S_cat = np.bincount(kk, weights=y_k ** 2 - 2 * y_k * m_k - y_k, minlength=K) + M_cat

        def mom(y: np.ndarray, m: np.ndarray, prior: np.ndarray | None = None) -> tuple[float, np.ndarray]:
            S = ((y - m) ** 2 - y).sum(axis=1)
            M = (m ** 2).sum(axis=1)
            a = float(max(0.0, S.sum() / max(M.sum(), 1e-12)))
            if prior is not None and K > 1:  # the category mix's dispersion, rescaled to average a
                a_prior = a * prior * M.sum() / max(float((prior * M).sum()), 1e-12)
            else:
                a_prior = a
            return a, np.maximum(0.0, (S + kappa * a_prior) / (M + kappa))

        a_glob = float(max(0.0, S_cat.sum() / max(M_cat.sum(), 1e-12)))
        a_cat = np.maximum(0.0, (S_cat + _CATEGORY_PRIOR * a_glob) / (M_cat + _CATEGORY_PRIOR))
        # implied alpha of a cell's (disk's) total if its categories were independent NB counts
        S_mix = (self.lam_ ** 2 * (Tb ** 2).sum(axis=1)[None, :]) @ a_cat
        M_cell = (mu ** 2).sum(axis=1)
        Wd = kring_weights(self.cells_, k, include_self=True)
        M_ring = (np.asarray(Wd @ mu) ** 2).sum(axis=1)
        a_cell, a_c = mom(Y, mu, S_mix / np.maximum(M_cell, 1e-12))
        a_ring, a_r = mom(np.asarray(Wd @ Y), np.asarray(Wd @ mu), np.asarray(Wd @ S_mix) / np.maximum(M_ring, 1e-12))
        out = (a_cell, a_ring, a_c, a_r, a_cat)
        self._disp_cache[key] = out
        return out

    # ------------------------------------------------------------------------------------ reporting
    def season_effects(self) -> pd.DataFrame:
        """Per category: multipliers of each fitted term (weekday vs Monday, trend per year, wage season
        at its start and at its peak, holidays) — e.g. 拖欠农民工工资 shows a large wage-season peak."""
        names: list[str] = []
        if "dow" in self.terms_:
            names += [f"dow_{d}" for d in ("tue", "wed", "thu", "fri", "sat", "sun")]
        if "trend" in self.terms_:
            names.append("trend_per_year")
        if "fourier" in self.terms_:
            for h in range(1, self.fourier_order + 1):
                names += [f"sin{h}", f"cos{h}"]
        if "wage" in self.terms_:
            names += ["wage_step", "wage_ramp"]
        if "sf_holiday" in self.terms_:
            names.append("spring_festival_holiday")
        if "national_day" in self.terms_:
            names.append("national_day")
        out = pd.DataFrame(np.exp(self.beta_[:, 1:]), index=self.categories_, columns=names)
        if "wage" in self.terms_:
            out["wage_season_peak"] = out["wage_step"] * out["wage_ramp"]
        out["events"] = self.category_events_
        out.index.name = "category_code"
        return out
