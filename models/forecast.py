"""Next-period risk forecast per H3 cell, and the simple baselines it is always compared with.

All models share one interface (scikit-learn style)::

    model.fit(panel, cells=None, exposure=None, origin=None)   # learns from the rows before ``origin``
    model.predict(panel, origin, cells=None, exposure=None) -> pd.Series   # index: cell (uint64)

``panel`` is the long (cell, week, n, [cat:*], [open]) DataFrame of :mod:`models.panel`; ``week`` is the
period start (weekly by default; any fixed ``period`` works, e.g. ``"1D"``). ``predict`` returns the
expected event count of each cell over ``[origin, origin + horizon)`` and **only reads panel rows with
``week < origin``** (rows at or after the origin are dropped before anything is computed); ``fit`` with
``origin`` does the same, so a forecast can never see the period it forecasts. ``exposure`` (period
start -> observed fraction 0..1) marks missing or partial periods; without it every period from the first
one in the panel up to the origin is assumed observed. Rates are always counts divided by observed
exposure, so a gap (Portland's October 2016) is never read as zeros.

Models
------
* :class:`CellRiskForecaster` -- the forecaster. Default learner: a space-time kernel (exponentially
  weighted own rate + k-ring neighbour sums + a recent-window term) whose memory and bandwidth are tuned,
  on the periods before the origin, for the share of events captured in the top 1 % / 5 % of cells.
  Options: a non-negative Poisson additive mix, or ``HistGradientBoostingRegressor(loss="poisson")`` on
  own / ring counts over the ``lags`` windows, season, category mix and open-case features (alone or
  blended with the kernel). See the class docstring and ``bench/RESULTS_backtest.md``.
* :class:`LastKWeeks` -- count over the last ``k`` periods (per observed period).
* :class:`AllHistory` -- count over all history (per observed period).
* :class:`EWMAHistory` -- exponentially weighted history rate (half-life in periods).
* :class:`KDEBaseline` -- Gaussian kernel density of the recent events, evaluated at cell centres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from models.panel import CATEGORY_PREFIX, cell_centres, ring_matrix

__all__ = [
    "AllHistory",
    "CellRiskForecaster",
    "EWMAHistory",
    "KDEBaseline",
    "LastKWeeks",
    "PanelGrid",
    "build_grid",
    "kernel_parts",
    "kernel_score",
]


# --------------------------------------------------------------------------------------------------
# dense cell x period grid
# --------------------------------------------------------------------------------------------------
@dataclass
class PanelGrid:
    """Dense view of a panel: ``Y[cell, period]`` counts, observed ``exposure[period]`` (0..1)."""

    cells: np.ndarray           # uint64, universe (sorted)
    periods: pd.DatetimeIndex   # period starts, contiguous, step ``step``
    step: pd.Timedelta
    Y: np.ndarray               # (U, T) float
    exposure: np.ndarray        # (T,) float
    cats: dict[str, np.ndarray]  # name -> (U, T)
    open: np.ndarray | None     # (U, T) or None


def _infer_step(weeks: pd.DatetimeIndex, period) -> pd.Timedelta:
    if period is not None:
        return pd.Timedelta(period)
    u = np.unique(weeks.values)
    if u.size < 2:
        return pd.Timedelta("7D")
    return pd.Timedelta(np.diff(u).min())


def build_grid(panel: pd.DataFrame, *, cells=None, exposure: pd.Series | None = None, end=None,
               period=None) -> PanelGrid:
    """Dense grid of ``panel`` rows with ``week < end`` (all rows if ``end`` is None).

    The period axis runs from the first period in the panel (or in ``exposure``) to the last one before
    ``end`` (without ``end``: to the last period present in the panel). ``cells`` is the universe; panel cells outside it are added (they hold events)."""
    weeks = pd.DatetimeIndex(pd.to_datetime(panel["week"]))
    step = _infer_step(weeks, period)
    keep = np.ones(len(panel), dtype=bool)
    if end is not None:
        end = pd.Timestamp(end)
        keep = np.asarray(weeks < end)
    p = panel.loc[keep]
    pw = weeks[keep]
    starts = [pw.min()] if len(pw) else []
    if exposure is not None and len(exposure):
        starts.append(pd.DatetimeIndex(exposure.index).min())
    if not starts:
        raise ValueError("no history before the origin")
    t0 = min(starts)
    if end is None:
        # the panel's last period ends the grid: exposure entries after it are not evidence of zeros
        t_end = pw.max() + step
    else:
        t_end = end
    T = int((t_end - t0) // step)
    periods = pd.DatetimeIndex([t0 + i * step for i in range(T)])
    if exposure is None:
        expo = np.ones(T)
    else:
        ex = exposure.copy()
        ex.index = pd.DatetimeIndex(ex.index)
        expo = ex.reindex(periods, fill_value=0.0).to_numpy(dtype=float)
    pc = p["cell"].to_numpy(dtype=np.uint64)
    universe = np.unique(pc) if cells is None else np.union1d(np.asarray(cells, dtype=np.uint64), pc)
    ci = np.searchsorted(universe, pc)
    ti = np.asarray((pw - t0) // step, dtype=int)
    U = universe.size

    def dense(values) -> np.ndarray:
        m = np.zeros((U, T))
        np.add.at(m, (ci, ti), np.asarray(values, dtype=float))
        return m

    Y = dense(p["n"].to_numpy())
    cats = {c[len(CATEGORY_PREFIX):]: dense(p[c].to_numpy()) for c in p.columns if c.startswith(CATEGORY_PREFIX)}
    open_ = dense(p["open"].to_numpy()) if "open" in p.columns else None
    return PanelGrid(universe, periods, step, Y, expo, cats, open_)


def _window_sums(cum: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
    """Sum over periods [t-w, t) from a cumulative array with a leading 0 column; shape (U, len(t))."""
    lo = np.maximum(t - w, 0)
    return cum[..., t] - cum[..., lo]


def _cum(a: np.ndarray) -> np.ndarray:
    z = np.zeros(a.shape[:-1] + (1,))
    return np.concatenate([z, np.cumsum(a, axis=-1)], axis=-1)


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _ewm(Y: np.ndarray, expo: np.ndarray, halflife: float, targets=None) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially weighted sums of counts and of exposure over the periods before each target ``t``
    (weight ``0.5 ** ((t - 1 - p) / halflife)`` for period ``p < t``). ``targets`` defaults to every
    ``t`` in 0..T. Returns (num (U, len(targets)), den (len(targets),))."""
    T = Y.shape[1]
    t = np.arange(T + 1) if targets is None else np.asarray(targets, dtype=int)
    lag = t[None, :] - 1 - np.arange(T)[:, None]            # (T, nt)
    W = np.where(lag >= 0, 0.5 ** (np.maximum(lag, 0) / float(halflife)), 0.0)
    return Y @ W, expo @ W


def kernel_parts(g: PanelGrid, targets, halflife: float, recent_window: int):
    """The four terms of the forecaster's space-time kernel at each target period index ``t``, each
    ``(U, len(targets))`` and computed from periods ``< t`` only: the exponentially weighted own rate
    (half-life ``halflife`` periods; ``inf`` = the plain all-history rate), its ring-1 and ring-2
    neighbour sums, and the rate over the last ``recent_window`` periods. Rates are per observed period.

    Public so that a fixed kernel can be scored on every week of a long grid at once (the bench's
    hindsight diagnostic) with exactly the forecaster's arithmetic; combine with :func:`kernel_score`."""
    targets = np.asarray(targets, dtype=int)
    U = g.cells.size
    nt = targets.size
    cumE = _cum(g.exposure[None, :])[0]
    if np.isinf(halflife):
        num = _cum(g.Y)[:, targets]
        den = cumE[targets]
    else:
        num, den = _ewm(g.Y, g.exposure, halflife, targets)
    E = np.nan_to_num(_rate(num, np.broadcast_to(den, (U, nt))))
    d = np.broadcast_to(_window_sums(cumE, targets, int(recent_window)), (U, nt))
    Rc = np.nan_to_num(_rate(_window_sums(_cum(g.Y), targets, int(recent_window)), d))
    return E, ring_matrix(g.cells, 1) @ E, ring_matrix(g.cells, 2) @ E, Rc


def kernel_score(parts, a1: float, a2: float, b: float) -> np.ndarray:
    """Risk score of the space-time kernel: own rate + ``a1`` x ring-1 + ``a2`` x ring-2 neighbour sums +
    ``b`` x the recent rate (``parts`` from :func:`kernel_parts`)."""
    E, R1E, R2E, Rc = parts
    return E + a1 * R1E + a2 * R2E + b * Rc


# --------------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------------
class _PanelModel(BaseEstimator):
    """Shared fit/predict plumbing: ``predict`` builds the grid from rows before the origin only."""

    horizon_weeks: int = 1
    period = None

    def fit(self, panel: pd.DataFrame, cells=None, exposure=None, origin=None):  # noqa: ARG002
        return self

    def predict(self, panel: pd.DataFrame, origin, cells=None, exposure=None) -> pd.Series:
        origin = pd.Timestamp(origin)
        g = build_grid(panel, cells=cells, exposure=exposure, end=origin, period=self.period)
        scores = self._score(g) * float(self.horizon_weeks)
        s = pd.Series(np.nan_to_num(scores, nan=0.0), index=pd.Index(g.cells, name="cell"), name="expected")
        if cells is not None:
            s = s.reindex(np.asarray(cells, dtype=np.uint64), fill_value=0.0)
        return s

    def _score(self, g: PanelGrid) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class LastKWeeks(_PanelModel):
    """Naive baseline: events in the last ``k`` periods before the origin (per observed period, so a
    partly missing window is not read as zeros). ``skip_gaps=True`` instead uses the most recent
    observed periods until ``k`` periods' worth of exposure is covered."""

    def __init__(self, k: int = 4, skip_gaps: bool = False, horizon_weeks: int = 1, period=None):
        self.k = k
        self.skip_gaps = skip_gaps
        self.horizon_weeks = horizon_weeks
        self.period = period

    def _score(self, g: PanelGrid) -> np.ndarray:
        T = g.Y.shape[1]
        if self.skip_gaps:
            idx, got = [], 0.0
            for t in range(T - 1, -1, -1):
                if g.exposure[t] > 0:
                    idx.append(t)
                    got += g.exposure[t]
                    if got >= self.k - 1e-9:
                        break
            idx = np.array(idx, dtype=int)
        else:
            idx = np.arange(max(T - self.k, 0), T)
        den = g.exposure[idx].sum()
        return _rate(g.Y[:, idx].sum(axis=1), np.full(g.Y.shape[0], den))


class AllHistory(_PanelModel):
    """Naive baseline: events over all history before the origin, per observed period."""

    def __init__(self, horizon_weeks: int = 1, period=None):
        self.horizon_weeks = horizon_weeks
        self.period = period

    def _score(self, g: PanelGrid) -> np.ndarray:
        return _rate(g.Y.sum(axis=1), np.full(g.Y.shape[0], g.exposure.sum()))


class EWMAHistory(_PanelModel):
    """Exponentially weighted history rate with half-life ``halflife`` periods (a long-memory naive)."""

    def __init__(self, halflife: float = 26.0, horizon_weeks: int = 1, period=None):
        self.halflife = halflife
        self.horizon_weeks = horizon_weeks
        self.period = period

    def _score(self, g: PanelGrid) -> np.ndarray:
        num, den = _ewm(g.Y, g.exposure, self.halflife, [g.Y.shape[1]])
        return _rate(num[:, 0], np.full(g.Y.shape[0], den[0]))


class KDEBaseline(_PanelModel):
    """Kernel density of the events of the last ``window`` periods, evaluated at the cell centres.

    Gaussian kernel with standard deviation ``bandwidth_m`` metres, truncated at 3 bandwidths. The panel
    only knows each event's cell, so events are placed at their cell's centre: with a bandwidth at
    least the cell size (res 9 ~ 175 m edge, res 10 ~ 66 m) this is the usual grid-binned KDE. The score
    is the kernel-weighted event count (the density up to a constant)."""

    def __init__(self, bandwidth_m: float = 250.0, window: int = 4, horizon_weeks: int = 1, period=None):
        self.bandwidth_m = bandwidth_m
        self.window = window
        self.horizon_weeks = horizon_weeks
        self.period = period

    def _score(self, g: PanelGrid) -> np.ndarray:
        from scipy.spatial import cKDTree

        T = g.Y.shape[1]
        idx = np.arange(max(T - self.window, 0), T)
        w = g.Y[:, idx].sum(axis=1)
        den = g.exposure[idx].sum()
        lon, lat = cell_centres(g.cells)
        lat0 = np.deg2rad(np.nanmean(lat)) if lat.size else 0.0
        xy = np.column_stack([np.deg2rad(lon) * np.cos(lat0), np.deg2rad(lat)]) * 6_371_008.8
        src = np.flatnonzero(w > 0)
        out = np.zeros(g.cells.size)
        if src.size == 0 or den <= 0:
            return out
        tree = cKDTree(xy[src])
        h = float(self.bandwidth_m)
        pairs = tree.query_ball_point(xy, r=3 * h)
        for i, js in enumerate(pairs):
            if js:
                d2 = ((xy[src[js]] - xy[i]) ** 2).sum(axis=1)
                out[i] = (w[src[js]] * np.exp(-0.5 * d2 / h**2)).sum()
        return out / den


# --------------------------------------------------------------------------------------------------
# the forecaster
# --------------------------------------------------------------------------------------------------
class CellRiskForecaster(_PanelModel):
    """Next-period expected count (risk score) per cell. See the module docstring for the features.

    Learners (``estimator``), all fitted only on periods before the origin:

    * ``"kernel"`` (default) -- a *ranking-tuned space-time kernel*: the exponentially weighted own rate
      (half-life ``h``) plus ``a1`` x the ring-1 and ``a2`` x the ring-2 neighbour sums of that rate,
      plus ``b`` x the rate of the last ``recent_window`` periods (default 4 weeks; 7 days for daily
      data). ``(h, a1, a2, b)`` are chosen on a small grid (``kernel_grid``, defaults in
      ``DEFAULT_KERNEL_GRID``) by the share of events captured in the top ``tune_fractions`` of
      cells over the last ``max_train_periods`` fully observed periods before the origin, each scored
      with only its own past -- i.e. the bandwidth and memory are tuned on exactly what is evaluated
      (the top 1 % / 5 %), as the NIJ winners tuned theirs. A candidate replaces the plain all-history
      rate only if it captures at least ``tune_margin`` (relative) more, so with little history the
      model falls back to the long-run count instead of chasing noise. Only periods that had seen at least
      ``tune_history_ratio`` of the history available at the origin are used for tuning (with less
      history, smoothing and recency look better than they will be at the origin).
    * ``"additive"`` -- ``mu = sum_j w_j x_j`` with non-negative weights on the non-negative rate
      features (own / EWM / ring / category rates, a constant), fitted by maximum Poisson likelihood
      (L-BFGS-B, small ridge): a likelihood-fitted kernel mixture.
    * ``"hgb"`` -- ``HistGradientBoostingRegressor(loss="poisson")`` on all features (own counts over the
      ``lags`` windows, exponentially weighted rates, ring-1/ring-2 counts over the same windows,
      same-season rate and phase, category rates, open-case rates, history length) plus the kernel score.
    * ``"blend"`` -- weighted geometric mean of ``"hgb"`` and ``"kernel"`` (weight ``blend`` on the kernel).

    Measured on the Portland backtests (bench/RESULTS_backtest.md): on the dense weekly series every
    learner is within noise of the long-run count (all are near the Poisson noise floor); on sparse
    burglary the kernel gains ~10 % PAI@5 % over the all-history count. ``"kernel"`` is the default
    because it is never worse than the long-run count by more than noise and is about 10x cheaper
    than boosting. The likelihood learners train on every (cell, target period) row, or on a uniform random
    ``max_train_rows`` of them; ``lags``, ``rings``, ``halflives`` and ``season_cycle`` shape their features
    (the kernel uses its own grid), ``random_state`` seeds the boosting and the row subsample."""

    def __init__(self, horizon_weeks: int = 1, lags=(1, 2, 4, 8, 13, 26, 52), random_state=0, *,
                 period=None, estimator: str = "kernel", rings=(1, 2), halflives=(4, 13, 52),
                 kernel_grid: dict | None = None, recent_window: int | None = None, tune_fractions=(0.01, 0.05),
                 tune_margin: float = 0.005, tune_history_ratio: float = 0.5, blend: float = 0.5, season_cycle: int | None = None,
                 min_history: int = 1, max_train_periods: int = 52, max_train_rows: int = 300_000,
                 ridge: float = 1e-3, learning_rate: float = 0.05, max_iter: int = 150,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 200, l2_regularization: float = 1.0):
        self.horizon_weeks = horizon_weeks
        self.lags = lags
        self.random_state = random_state
        self.period = period
        self.estimator = estimator
        self.rings = rings
        self.halflives = halflives
        self.kernel_grid = kernel_grid
        self.recent_window = recent_window
        self.tune_fractions = tune_fractions
        self.tune_margin = tune_margin
        self.tune_history_ratio = tune_history_ratio
        self.blend = blend
        self.season_cycle = season_cycle
        self.min_history = min_history
        self.max_train_periods = max_train_periods
        self.max_train_rows = max_train_rows
        self.ridge = ridge
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization

    DEFAULT_KERNEL_GRID = {
        "halflife": (np.inf, 4, 13, 26, 52, 104),   # periods; inf = plain all-history rate
        "a1": (0.0, 0.05, 0.1, 0.2, 0.35, 0.5),
        "a2": (0.0, 0.03, 0.07, 0.15),
        "b": (0.0, 0.5, 1.0),
    }

    # ---- features ---------------------------------------------------------------------------------
    def _cycle(self, step: pd.Timedelta) -> int:
        if self.season_cycle is not None:
            return int(self.season_cycle)
        if step <= pd.Timedelta("1D"):
            return int(pd.Timedelta("7D") // step)      # same weekday
        return int(round(pd.Timedelta("364D") / step))  # same week last year

    def _features(self, g: PanelGrid, targets: np.ndarray, rings: dict, use_phase: bool):
        """Features for every (cell, target period index t), using periods < t only.

        Returns ``(X, names, additive)``: ``X`` (rows target-major, NaN = no observed period in the
        window) and the list of names; ``additive`` is the boolean mask of the non-negative rate columns
        used by the additive model (their NaNs are filled with the matching all-history rate)."""
        U = g.cells.size
        nt = targets.size
        lags = sorted({int(w) for w in self.lags})
        cumE = _cum(g.exposure[None, :])[0]
        hist = cumE[targets]
        cols: list[np.ndarray] = []
        names: list[str] = []
        addv: list[bool] = []
        fill: list[np.ndarray | None] = []

        def add(name, mat, additive=True, fallback=None):
            names.append(name)
            cols.append(np.broadcast_to(mat, (U, nt)).astype(float))
            addv.append(additive)
            fill.append(fallback)

        def window_block(prefix, M, windows, per=1.0):
            """Rates of count matrix M over each window, plus all history and exp. weighted."""
            cm = _cum(M)
            allr = _rate(cm[:, targets], np.broadcast_to(hist, (U, nt))) / per
            for w in windows:
                den = np.broadcast_to(_window_sums(cumE, targets, w), (U, nt))
                add(f"{prefix}_w{w}", _rate(_window_sums(cm, targets, w), den) / per, fallback=allr)
            add(f"{prefix}_all", allr)
            for h in self.halflives:
                num, den = _ewm(M, g.exposure, h, targets)
                add(f"{prefix}_ewm{h:g}", _rate(num, np.broadcast_to(den, (U, nt))) / per, fallback=allr)

        add("history_periods", np.minimum(hist, max(lags))[None, :], additive=False)
        window_block("own", g.Y, lags)
        for k, R in rings.items():
            nk = np.asarray(R.sum(axis=1)).ravel()
            window_block(f"ring{k}", R @ g.Y, [w for w in lags if w >= 4] or lags, per=np.where(nk > 0, nk, 1.0)[:, None])
        # season: same phase of the cycle (weekday for daily data, week of year for weekly data)
        cyc = self._cycle(g.step)
        if cyc > 1:
            num = np.zeros((U, nt))
            den = np.zeros(nt)
            for j, t in enumerate(targets):
                ph = np.arange(t - cyc, -1, -cyc)
                if ph.size:
                    num[:, j] = g.Y[:, ph].sum(axis=1)
                    den[j] = g.exposure[ph].sum()
            add("season_same_phase", _rate(num, np.broadcast_to(den, (U, nt))), additive=False)
            if use_phase:
                phase = ((g.periods[0] - pd.Timestamp("2001-01-01")) // g.step + targets) % cyc
                add("season_phase", phase.astype(float)[None, :], additive=False)
        # category mix: category rates over a short and a long window and all history
        short = min(lags, key=lambda w: abs(w - 4))
        for name, M in g.cats.items():
            cm = _cum(M)
            allr = _rate(cm[:, targets], np.broadcast_to(hist, (U, nt)))
            for w in sorted({short, max(lags)}):
                den = np.broadcast_to(_window_sums(cumE, targets, w), (U, nt))
                add(f"cat_{name}_w{w}", _rate(_window_sums(cm, targets, w), den), fallback=allr)
            add(f"cat_{name}_all", allr)
        if g.open is not None:
            co = _cum(g.open)
            for w in sorted({1, short}):
                den = np.broadcast_to(_window_sums(cumE, targets, w), (U, nt))
                add(f"open_w{w}", _rate(_window_sums(co, targets, w), den), additive=False)
        add("const", np.ones((1, 1)))
        X = np.empty((U * nt, len(cols)))
        for j, c in enumerate(cols):
            if addv[j]:
                c = np.where(np.isnan(c), np.nan_to_num(fill[j], nan=0.0) if fill[j] is not None else 0.0, c)
                c = np.nan_to_num(c, nan=0.0)
            X[:, j] = c.T.reshape(-1)
        return X, names, np.array(addv)

    def _rings(self, g: PanelGrid) -> dict:
        return {k: ring_matrix(g.cells, k) for k in self.rings}

    def _targets(self, g: PanelGrid) -> tuple[np.ndarray, np.ndarray]:
        """Training target periods: fully observed horizon, with ``min_history`` observed periods before."""
        T = g.Y.shape[1]
        h = int(self.horizon_weeks)
        cumE = _cum(g.exposure[None, :])[0]
        ts = [t for t in range(1, T - h + 1)
              if np.all(g.exposure[t:t + h] >= 1.0 - 1e-9) and cumE[t] >= self.min_history - 1e-9]
        ts = np.array(ts[-int(self.max_train_periods):], dtype=int)
        cumY = _cum(g.Y)
        y = (cumY[:, ts + h] - cumY[:, ts]).T.reshape(-1) if ts.size else np.zeros(0)
        return ts, y

    def _recent_window(self, step: pd.Timedelta) -> int:
        """Periods in the 'recent' term: ``recent_window``, or 4 weeks for weekly data and 7 periods
        (a week of days) for shorter periods."""
        if self.recent_window is not None:
            return int(self.recent_window)
        return 4 if step >= pd.Timedelta("7D") else max(1, int(round(pd.Timedelta("7D") / step)))

    # ---- kernel learner ---------------------------------------------------------------------------
    def _kernel_parts(self, g: PanelGrid, targets: np.ndarray, halflife: float):
        return kernel_parts(g, targets, halflife, self._recent_window(g.step))

    def _tune_kernel(self, g: PanelGrid, ts: np.ndarray) -> None:
        grid = {**self.DEFAULT_KERNEL_GRID, **(self.kernel_grid or {})}
        default = (np.inf, 0.0, 0.0, 0.0)
        self.kernel_params_ = dict(zip(("halflife", "a1", "a2", "b"), default, strict=True))
        self.kernel_table_ = None
        # tune only on periods that had seen at least ``tune_history_ratio`` of the history available at
        # the origin: with less history, smoothing and recency look better than they will at prediction
        cumE = _cum(g.exposure[None, :])[0]
        ts = ts[cumE[ts] >= float(self.tune_history_ratio) * cumE[-1] - 1e-9]
        if ts.size == 0:
            return
        h = int(self.horizon_weeks)
        cumY = _cum(g.Y)
        Yt = cumY[:, ts + h] - cumY[:, ts]
        total = max(float(Yt.sum()), 1.0)
        U = g.cells.size
        ks = [max(1, int(np.floor(f * U + 0.5))) for f in self.tune_fractions]

        def captured(S: np.ndarray) -> float:
            out = 0.0
            for k in ks:
                idx = np.argpartition(-S, k - 1, axis=0)[:k]
                out += float(np.take_along_axis(Yt, idx, axis=0).sum())
            return out / total / len(ks)

        rows = []
        for hl in grid["halflife"]:
            E, R1E, R2E, Rc = self._kernel_parts(g, ts, float(hl))
            for a1 in grid["a1"]:
                for a2 in grid["a2"]:
                    S12 = E + a1 * R1E + a2 * R2E
                    for b in grid["b"]:
                        rows.append((float(hl), a1, a2, b, captured(S12 + b * Rc)))
        table = pd.DataFrame(rows, columns=["halflife", "a1", "a2", "b", "captured"])
        base = table[(np.isinf(table.halflife)) & (table.a1 == 0) & (table.a2 == 0) & (table.b == 0)]
        base_val = float(base["captured"].iloc[0]) if len(base) else -np.inf
        best = table.loc[table["captured"].idxmax()]
        if best["captured"] > base_val * (1 + float(self.tune_margin)):
            self.kernel_params_ = {c: float(best[c]) for c in ("halflife", "a1", "a2", "b")}
        self.kernel_table_ = table

    def _kernel_score(self, g: PanelGrid, targets: np.ndarray) -> np.ndarray:
        p = self.kernel_params_
        return kernel_score(self._kernel_parts(g, targets, p["halflife"]), p["a1"], p["a2"], p["b"])

    # ---- likelihood learners -----------------------------------------------------------------------
    @staticmethod
    def _fit_additive(A: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
        """Non-negative weights maximising the Poisson likelihood of ``mu = A @ w`` (plus a small ridge)."""
        from scipy.optimize import minimize

        scale = A.mean(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        Z = A / scale
        n = float(y.size)
        eps = 1e-9

        def f(w):
            mu = Z @ w + eps
            val = (mu - y * np.log(mu)).sum() / n + ridge * (w @ w)
            grad = Z.T @ (1.0 - y / mu) / n + 2 * ridge * w
            return val, grad

        w0 = np.full(Z.shape[1], float(y.sum()) / n / max(Z.sum(axis=1).mean(), eps))
        r = minimize(f, w0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * Z.shape[1],
                     options={"maxiter": 500})
        return r.x / scale

    def fit(self, panel: pd.DataFrame, cells=None, exposure=None, origin=None):
        """Fit on the panel rows before ``origin`` (all rows if None; the grid then ends with the last
        period present in the panel)."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        if self.estimator not in ("kernel", "additive", "hgb", "blend"):
            raise ValueError(f"estimator must be 'kernel', 'additive', 'hgb' or 'blend', got {self.estimator!r}")
        g = build_grid(panel, cells=cells, exposure=exposure, end=origin, period=self.period)
        ts, y = self._targets(g)
        self.n_train_periods_ = int(ts.size)
        self.weights_ = None
        self.model_ = None
        self._tune_kernel(g, ts)
        if self.estimator == "kernel" or ts.size == 0 or y.sum() <= 0:
            return self
        self.use_phase_ = bool(g.exposure.sum() >= 2 * self._cycle(g.step))
        X, names, addv = self._features(g, ts, self._rings(g), self.use_phase_)
        keep = np.ones(y.size, dtype=bool)
        if y.size > int(self.max_train_rows):  # uniform subsample: unbiased without weights
            rng = np.random.default_rng(self.random_state)
            keep[:] = False
            keep[rng.choice(y.size, int(self.max_train_rows), replace=False)] = True
        self.feature_names_ = names
        self.additive_mask_ = addv
        self.n_train_rows_ = int(keep.sum())
        if self.estimator == "additive":
            self.weights_ = self._fit_additive(X[keep][:, addv], y[keep], self.ridge)
            return self
        ker = self._kernel_score(g, ts).T.reshape(-1)
        Xh = np.column_stack([X, np.log(ker + 1e-6)])[keep]
        self.keep_cols_ = np.isfinite(Xh).any(axis=0)  # e.g. same-week-last-year before a year of data
        self.model_ = HistGradientBoostingRegressor(
            loss="poisson", learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False, random_state=self.random_state,
        ).fit(Xh[:, self.keep_cols_], y[keep])
        return self

    @property
    def additive_weights_(self) -> pd.Series:
        """Fitted additive-model weights by feature name (per unit of feature)."""
        names = [n for n, a in zip(self.feature_names_, self.additive_mask_, strict=True) if a]
        return pd.Series(self.weights_, index=names)

    def _score(self, g: PanelGrid) -> np.ndarray:
        T = np.array([g.Y.shape[1]])
        h = float(self.horizon_weeks)
        if not hasattr(self, "kernel_params_"):
            raise RuntimeError("call fit() before predict()")
        ker = self._kernel_score(g, T)[:, 0]
        if self.estimator == "kernel" or (self.weights_ is None and self.model_ is None):
            return ker
        X, names, addv = self._features(g, T, self._rings(g), self.use_phase_)
        if self.estimator == "additive":
            return np.maximum(X[:, addv] @ self.weights_, 0.0) / h
        Xh = np.column_stack([X, np.log(ker + 1e-6)])[:, self.keep_cols_]
        pred = self.model_.predict(Xh) / h
        if self.estimator == "hgb":
            return pred
        b = float(self.blend)
        eps = 1e-6
        return np.exp((1 - b) * np.log(pred + eps) + b * np.log(ker + eps))
