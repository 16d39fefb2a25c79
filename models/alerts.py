""""Unusual now": surprise scores per cell, per k-ring neighbourhood and per category, with BH-FDR.

Pipeline of :func:`score_window` (one window = a day or the 7 days ending at a date):

1. :class:`models.expected.ExpectedCounts` is fitted on the history *before* the window (the window
   never inflates its own baseline) and predicts ``expected`` per cell and category for the window.
2. Each cell gets a one-sided negative-binomial p-value ``P(Y ≥ observed | expected, alpha_c)`` where
   ``alpha_c`` = the global NB dispersion for window sums (moments on history blocks of the same
   length) + the cell's own parameter uncertainty (``1/shape`` of its gamma posterior); the score is
   ``-log10 p`` (:func:`surprise`).
3. Each cell is also the centre of a k-ring *neighbourhood*: observed and expected are summed over
   the disk and tested the same way (with the dispersion of disk sums), so a spread cluster of small
   rises over 7 cells is caught even when no single cell is unusual. Only local maxima of the
   neighbourhood score are reported (one alert per cluster).
4. Each (cell, category) pair is tested too (``by_category``).
5. Benjamini–Hochberg at ``alpha`` is applied **per family** (cells; neighbourhoods; cell × category
   pairs), every tested unit counting in its family (cells without events have p = 1). Units with
   fewer than ``min_observed`` events are never alerts (p set to 1). With ``dedupe`` a neighbourhood
   alert must stay significant after removing the cells that are cell alerts themselves (so one
   spike is not reported twice), and category alerts are dropped in cells that already have a cell
   alert (whose ``drivers`` name the category).

Slow build-ups are :mod:`models.ramps` (NB CUSUM, ``kind = "ramp"``), in the same row layout.

Every alert carries the categories driving it (largest excess over expected) and a Chinese sentence.
:func:`models.alert_eval.evaluate_detection` measures recall at a fixed number of false alarms per
day on injected anomalies (used by ``bench/anomaly.py``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special, stats
from sklearn.base import clone

from models.expected import ExpectedCounts, day_numbers
from models.hexgrid import as_cells, kring_weights
from models.stats import fdr_bh
from onemap.categories import UnknownCodeError, category

__all__ = [
    "ALERT_COLUMNS",
    "ScoredWindow",
    "bh_qvalues",
    "category_label",
    "score_cells",
    "score_window",
    "select_alerts",
    "surprise",
]

ALERT_COLUMNS = ["kind", "cell", "resolution", "window_start", "window_end", "observed", "expected", "ratio",
                 "score", "p_value", "q_value", "category_code", "n_cells", "drivers", "sentence_zh", "family"]
#: the test families, each with its own Benjamini-Hochberg per window: an alert's q_value compares with those of
#: its own family (a category alert may come from the cell family, carried by one category, or from the cell ×
#: category or neighbourhood × category family)
FAMILIES = ("cell", "neighbourhood", "cell_category", "neighbourhood_category", "ramp_cell", "ramp_neighbourhood")
_LN10 = np.log(10.0)


# --------------------------------------------------------------------------------------------------
# p-values
# --------------------------------------------------------------------------------------------------
def surprise(observed, expected, alpha=0.0) -> tuple[np.ndarray, np.ndarray]:
    """One-sided surprise of ``observed`` counts: ``(p, score)`` with ``p = P(Y ≥ observed)`` under a
    negative binomial of mean ``expected`` and dispersion ``alpha`` (``Var = mu + alpha mu²``; 0 =
    Poisson) and ``score = -log10 p`` (0 when nothing was observed).

    The score is finite and non-decreasing in ``observed`` for fixed ``expected``: where ``p`` underflows
    (``< 1e-300``) ``-log10`` of the point probability is used instead (an upper bound of the same order).
    """
    y, mu, a = np.broadcast_arrays(np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                                   np.asarray(alpha, dtype=np.float64))
    y = np.floor(y)
    mu = np.maximum(mu, 1e-12)
    a = np.maximum(a, 0.0)
    p = np.ones(y.shape)
    logp = np.zeros(y.shape)
    pos = y > 0
    pois = pos & (a <= 1e-9)
    nb = pos & ~pois
    if pois.any():
        p[pois] = stats.poisson.sf(y[pois] - 1, mu[pois])
    if nb.any():
        r = 1.0 / a[nb]
        q = 1.0 / (1.0 + a[nb] * mu[nb])
        p[nb] = stats.nbinom.sf(y[nb] - 1, r, q)
    tiny = pos & (p < 1e-300)
    ok = pos & ~tiny
    logp[ok] = np.log(p[ok])
    if tiny.any():
        yt, mt, at = y[tiny], mu[tiny], a[tiny]
        lp = np.where(at <= 1e-9, yt * np.log(mt) - mt - special.gammaln(yt + 1), 0.0)
        nbt = at > 1e-9
        if nbt.any():
            r = 1.0 / at[nbt]
            lq = -np.log1p(at[nbt] * mt[nbt])
            lp[nbt] = (special.gammaln(yt[nbt] + r) - special.gammaln(r) - special.gammaln(yt[nbt] + 1)
                       + r * lq + yt[nbt] * np.log1p(-np.exp(lq)))
        logp[tiny] = np.minimum(lp, np.log(1e-300))
    p = np.clip(p, 0.0, 1.0)
    return p, np.maximum(-logp / _LN10, 0.0)


def bh_qvalues(p) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``q ≤ alpha`` ⇔ :func:`models.stats.fdr_bh` rejects)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    m = np.isfinite(p).sum()
    q = np.full(p.shape, np.nan)
    if m == 0:
        return q
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q


# --------------------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------------------
def category_label(code: str) -> str:
    """Chinese label for sentences: dispute codes get 纠纷 (邻里 → 邻里纠纷), grid events 类事件."""
    try:
        cat = category(code)
    except (UnknownCodeError, KeyError, TypeError):
        return str(code)
    name = cat.name_zh
    if cat.domain == "dispute":
        return name if name.endswith(("纠纷", "争议")) else name + "纠纷"
    return "其他事件" if code == "QT" else name + "类事件"


def _fmt_expected(mu: float) -> str:
    if mu >= 9.5:
        return f"约 {mu:.0f} 件"
    if mu >= 0.95:
        return f"约 {mu:.1f} 件"
    return "不足 1 件"


def _fmt_dates(start: dt.date, end: dt.date, days: int) -> str:
    if days == 1:
        return f"{end.month}月{end.day}日当天"
    tail = f"{end.day}日" if (start.year, start.month) == (end.year, end.month) else f"{end.month}月{end.day}日"
    return f"过去{days}天（{start.month}月{start.day}日至{tail}）"


def _join_drivers(drivers: Sequence[dict]) -> str:
    parts = [f"{d['name_zh']}（{d['observed']}件）" for d in drivers]
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return "、".join(parts[:-1]) + "与" + parts[-1]


def _area_text(hex_id: str, n_cells: int) -> str:
    """About how much ground ``n_cells`` hexagons like ``hex_id`` cover, in 平方公里 (two significant digits)."""
    km2 = h3.cell_area(hex_id, unit="km^2") * n_cells
    return f"约 {float(f'{km2:.2g}'):g} 平方公里"


def _sentence(kind: str, hex_id: str, start: dt.date, end: dt.date, days: int, observed: int, expected: float,
              drivers: Sequence[dict], n_cells: int = 1, n_rising: int = 0, label: str | None = None) -> str:
    when = f"近{days}天（{start.month}月{start.day}日起）持续上升" if kind == "ramp" else _fmt_dates(start, end, days)
    # a leader reads a size, not a hex id (the id stays in the alert's cell column)
    if kind == "neighbourhood" or n_cells > 1:
        place = f"该处及周边 {n_cells} 个六边形区域（{_area_text(hex_id, n_cells)}）合计"
    else:
        place = f"该处六边形区域（{_area_text(hex_id, 1)}）"
    what = f"{label} " if kind == "category" and label else " "
    s = f"{when}，{place}受理{what}{observed} 件，按历史同期预计{_fmt_expected(expected)}"
    if expected >= 0.95:
        s += f"，是预计的 {observed / expected:.1f} 倍"
    if kind in ("neighbourhood", "ramp") and n_rising > 1:
        s += f"，{n_rising} 个区域同时高于预计"
    main = _join_drivers(drivers) if kind != "category" else ""
    if main:
        s += f"，主要为{main}"
    return s + "。"


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------
def _local_max(W: sp.csr_matrix, score: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """Disk centres whose score (> 0) is the largest within their own disk (ties: larger excess, then id)."""
    n = score.size
    if not n:
        return np.zeros(0, dtype=bool)
    rank = np.argsort(np.argsort(excess, kind="stable"), kind="stable")
    s = score + 1e-9 * (rank + 1) / (n + 1)
    best = np.asarray(W.multiply(s[None, :]).tocsr().max(axis=1).todense()).ravel()
    return (s >= best) & (score > 0)


@dataclass
class ScoredWindow:
    """Everything tested in one window: per cell, per k-ring disk (centred on each cell) and per
    cell × category. ``scorer`` is ``"nb"`` (NB surprise, the model) or ``"z"`` (a z-score baseline)."""

    window_start: dt.date
    window_end: dt.date
    window_days: int
    k: int
    cells: np.ndarray                 # uint64, the tested universe
    observed: np.ndarray              # per cell
    expected: np.ndarray              # per cell
    W: sp.csr_matrix                  # disk (self included) among ``cells``
    alpha_cell: float | np.ndarray = 0.0   # NB dispersion per cell (or one value)
    alpha_ring: float | np.ndarray = 0.0   # NB dispersion per disk centre (or one value)
    uncertainty: np.ndarray | None = None  # per-cell extra NB dispersion (1/posterior shape)
    categories: np.ndarray | None = None
    observed_cat: sp.csr_matrix | None = None  # cells × categories
    expected_cat: np.ndarray | None = None
    min_observed: int = 3
    scorer: str = "nb"
    alpha_cat: np.ndarray | None = None    # NB dispersion per category (cell × category tests), else alpha_cell
    category_family: bool = False          # cell p = 2·min(p_total, Bonferroni p over the cell's categories)
    family_categories: np.ndarray | None = None  # bool per category: in the family (default: all)
    p_cell: np.ndarray = field(init=False)
    score_cell: np.ndarray = field(init=False)
    p_total: np.ndarray = field(init=False)       # the cell's total test alone
    family_wins: np.ndarray = field(init=False)   # bool per cell: its category family, not its total, decided
    family_pair: np.ndarray = field(init=False)   # per cell: index of its strongest cell × category pair, or −1
    ring_observed: np.ndarray = field(init=False)
    ring_expected: np.ndarray = field(init=False)
    p_ring: np.ndarray = field(init=False)
    score_ring: np.ndarray = field(init=False)
    local_max: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.cells.size
        if self.uncertainty is None:
            self.uncertainty = np.zeros(n)
        self.observed = np.asarray(self.observed, dtype=np.float64)
        self.expected = np.maximum(np.asarray(self.expected, dtype=np.float64), 1e-9)
        self.p_cell, self.score_cell = self._test(self.observed, self.expected, self.alpha_cell + self.uncertainty)
        self.p_total = self.p_cell
        self.family_wins = np.zeros(n, dtype=bool)
        self.family_pair = np.full(n, -1, dtype=np.int64)
        if self.category_family and self.has_categories and self.scorer == "nb":
            self.p_cell, self.score_cell = self._with_category_family(self.score_cell)
        self.ring_observed, self.ring_expected, self.p_ring, self.score_ring = self.ring_tests()
        self.local_max = _local_max(self.W, self.score_ring, self.ring_observed - self.ring_expected)

    @property
    def resolution(self) -> int:
        return int(h3.get_resolution(h3.int_to_str(int(self.cells[0])))) if self.cells.size else -1

    def _test(self, y: np.ndarray, mu: np.ndarray, alpha) -> tuple[np.ndarray, np.ndarray]:
        if self.scorer == "z":
            z = (y - mu) / np.sqrt(mu)
            p = stats.norm.sf(z)
            score = np.where(y > 0, z, -np.inf)
        else:
            p, score = surprise(y, mu, alpha)
        small = y < self.min_observed
        p = np.where(small, 1.0, p)
        score = np.where(small, 0.0 if self.scorer != "z" else -np.inf, score)
        return p, score

    def ring_tests(self, keep: np.ndarray | None = None, rows: np.ndarray | None = None):
        """Disk sums and tests; ``keep`` drops cells (mask False) from every disk; ``rows`` = centres."""
        W = self.W if rows is None else self.W[rows]
        y, mu, u = self.observed, self.expected, self.uncertainty
        if keep is not None:
            y, mu, u = y * keep, mu * keep, u * keep
        ry = np.asarray(W @ y).ravel()
        rm = np.maximum(np.asarray(W @ mu).ravel(), 1e-9)
        a0 = np.asarray(self.alpha_ring, dtype=np.float64)
        if a0.ndim and rows is not None:
            a0 = a0[rows]
        ra = a0 + np.asarray(W @ (mu ** 2 * u)).ravel() / rm ** 2
        p, score = self._test(ry, rm, ra)
        return ry, rm, p, score

    def _with_category_family(self, score_total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Combine each cell's total test with the family of its cell × category tests: Bonferroni over
        the K categories (``K · min_k p_k``), then over the two tests (``2 · min``) — a valid p-value that
        keeps a one-kind flare-up (five 邻里纠纷 where 0.1 are expected) from drowning in a busy cell's
        total. Computed as scores (−log10 p) so that tiny p-values do not underflow. Only the categories
        of ``family_categories`` take part (those the model has learned a rate for)."""
        rows, cols, _, _, _, score = self.category_tests()
        K = self.observed_cat.shape[1]
        fc = np.ones(K, dtype=bool) if self.family_categories is None else np.asarray(self.family_categories)
        score = np.where(fc[cols], score, 0.0)
        best = np.zeros(self.cells.size)
        order = np.argsort(score, kind="stable")  # ascending: the last write per cell is its best pair
        best[rows[order]] = score[order]
        self.family_pair[rows[order]] = order
        fam = np.maximum(best - np.log10(max(int(fc.sum()), 1)), 0.0)
        self.family_wins = fam > score_total  # the alert is about one kind of matter, not the total
        comb = np.maximum(np.maximum(score_total, fam) - np.log10(2.0), 0.0)
        return np.minimum(np.power(10.0, -comb), 1.0), comb

    # ---------------------------------------------------------------- categories
    @property
    def has_categories(self) -> bool:
        return self.observed_cat is not None and self.expected_cat is not None and self.categories is not None

    def category_tests(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, observed, expected, p, score) of the cell × category pairs holding events."""
        if not hasattr(self, "_cat_cache"):
            oc = self.observed_cat.tocoo()
            self._cat_cache = (oc.row.astype(np.int64), oc.col.astype(np.int64), *self._pair_tests(
                oc.row, oc.col, oc.data.astype(np.float64), self.expected_cat[oc.row, oc.col],
                (self._alpha(self.alpha_cell, oc.row) if self.alpha_cat is None else self.alpha_cat[oc.col])
                + self.uncertainty[oc.row]))
        return self._cat_cache

    def ring_category_tests(self, exclude: np.ndarray | None = None, pairs: tuple[np.ndarray, np.ndarray] | None = None):
        """(rows, cols, observed, expected, p, score) of disk × category sums: centre ``rows``, category
        ``cols`` (default: every pair whose disk holds events of the category). ``exclude`` (cells ×
        categories, bool) drops those cell × category entries from every disk."""
        obs = self.observed_cat
        exp = self.expected_cat
        if exclude is not None:
            obs = sp.csr_matrix(obs.multiply(~exclude))
            exp = exp * ~exclude
        ring_obs = sp.csr_matrix(self.W @ obs)
        if pairs is None:
            rc = ring_obs.tocoo()
            keep = rc.data > 0
            rows, cols, y = rc.row[keep].astype(np.int64), rc.col[keep].astype(np.int64), rc.data[keep]
        else:
            rows, cols = np.asarray(pairs[0], dtype=np.int64), np.asarray(pairs[1], dtype=np.int64)
            y = np.asarray(ring_obs[rows, cols]).ravel() if rows.size else np.zeros(0)
        mu = np.maximum(np.asarray(self.W @ exp)[rows, cols], 1e-9)
        u = np.asarray(self.W @ (exp ** 2 * self.uncertainty[:, None]))[rows, cols]
        a = self._alpha(self.alpha_ring, rows) + u / mu ** 2
        return (rows, cols, *self._pair_tests(rows, cols, y.astype(np.float64), mu, a))

    def ring_category_candidates(self):
        """Disk × category pairs that are local maxima of their category's disk score (p < 1):
        (rows, cols, observed, expected, p, score)."""
        if hasattr(self, "_rcat_cache"):
            return self._rcat_cache
        rows, cols, y, mu, p, score = self.ring_category_tests()
        sel = p < 1.0
        rows, cols, y, mu, p, score = rows[sel], cols[sel], y[sel], mu[sel], p[sel], score[sel]
        lm = np.zeros(rows.size, dtype=bool)
        n = self.cells.size
        for kk in np.unique(cols):
            at = np.flatnonzero(cols == kk)
            sc = np.zeros(n)
            sc[rows[at]] = score[at] + 1e-9 * (y[at] - mu[at]) / (1.0 + np.abs(y[at] - mu[at]))
            best = np.asarray(self.W.multiply(sc[None, :]).tocsr().max(axis=1).todense()).ravel()
            lm[at] = sc[rows[at]] >= best[rows[at]]
        self._rcat_cache = (rows[lm], cols[lm], y[lm], mu[lm], p[lm], score[lm])
        return self._rcat_cache

    @staticmethod
    def _alpha(a, rows: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a[rows] if a.ndim else np.full(rows.size, float(a))

    def _pair_tests(self, rows, cols, y, mu, a) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p, score = self._test(y, np.maximum(mu, 1e-9), a)
        return y, mu, p, score


def score_cells(model: ExpectedCounts, window: pd.DataFrame, window_end, window_days: int = 7, k: int = 1,
                by_category: bool = True, min_observed: int = 3, cells=None,
                category_family: bool = True) -> ScoredWindow:
    """Test one window against a *fitted* model. ``window`` holds the panel rows of the window (cell,
    day, n[, category_code]); the universe is the model's cells ∪ the window's cells ∪ ``cells``.
    With categories, cell × category pairs use each category's own NB dispersion, and (``category_family``)
    the cell test combines the total with the family of its category tests."""
    end = int(day_numbers(window_end))
    start = end - int(window_days) + 1
    if len(window):
        d = day_numbers(window["day"].to_numpy())
        window = window[(d >= start) & (d <= end)]
    wcells = as_cells(window["cell"].to_numpy()) if len(window) else np.zeros(0, dtype=np.uint64)
    universe = np.union1d(model.cells_, wcells)
    if cells is not None:
        universe = np.union1d(universe, as_cells(cells))
    universe = universe[universe != 0]
    ucells, mu_cat = model.expected_matrix(end, window_days, universe)
    expected = mu_cat.sum(axis=1)
    cats = model.categories_
    a_cat = model.dispersion_per_category(window_days)
    learned = model.category_events_ >= model.min_category_events  # categories with a rate of their own
    use_cat = by_category and "category_code" in window.columns and cats.size > 1
    ci = np.searchsorted(universe, wcells)
    n = window["n"].to_numpy(dtype=np.float64) if len(window) else np.zeros(0)
    if use_cat:
        codes = window["category_code"].astype(str).to_numpy()
        kj = np.searchsorted(cats, codes)
        known = (kj < cats.size) & (cats[np.minimum(kj, cats.size - 1)] == codes)
        if not known.all():  # a category unseen at fit time: give it a column with a tiny expectation
            new = np.unique(codes[~known])
            cats = np.concatenate([cats, new])
            order = np.argsort(cats, kind="stable")
            floor = np.full((universe.size, new.size), 0.5 / max(universe.size, 1))
            mu_cat = np.hstack([mu_cat, floor])[:, order]
            a_cat = np.concatenate([a_cat, np.full(new.size, model.dispersion(window_days, k)[0])])[order]
            learned = np.concatenate([learned, np.zeros(new.size, dtype=bool)])[order]
            cats = cats[order]
            kj = np.searchsorted(cats, codes)
        obs_cat = sp.csr_matrix((n, (ci, kj)), shape=(universe.size, cats.size))
        obs_cat.sum_duplicates()
    else:
        obs_cat, cats = None, None
    observed = np.bincount(ci, weights=n, minlength=universe.size)
    a_cell, a_ring = model.dispersion_per_cell(window_days, k, universe)
    W = kring_weights(universe, k, include_self=True)
    s_date = (np.datetime64(start, "D")).astype(dt.date)
    e_date = (np.datetime64(end, "D")).astype(dt.date)
    return ScoredWindow(s_date, e_date, int(window_days), int(k), ucells, observed, expected, W,
                        alpha_cell=a_cell, alpha_ring=a_ring, uncertainty=model.cell_uncertainty(universe),
                        categories=cats, observed_cat=obs_cat, expected_cat=mu_cat if use_cat else None,
                        min_observed=int(min_observed), alpha_cat=a_cat if use_cat else None,
                        category_family=bool(category_family and use_cat),
                        family_categories=learned if use_cat else None)


def _drivers(sw: ScoredWindow, rows: np.ndarray, top: int) -> list[dict]:
    if sw.observed_cat is None or sw.categories is None or top <= 0:
        return []
    return _top_drivers(np.asarray(sw.observed_cat[rows].sum(axis=0)).ravel(), sw.expected_cat[rows].sum(axis=0),
                        sw.categories, top)


def _top_drivers(o: np.ndarray, e: np.ndarray, categories: np.ndarray, top: int) -> list[dict]:
    """Categories with the largest excess of observed ``o`` over expected ``e`` (per category)."""
    excess = o - e
    order = np.lexsort((-o, -excess))
    out = []
    for j in order:
        # the first driver needs a positive excess, the others at least one event more than expected
        if o[j] <= 0 or excess[j] <= (0 if not out else 1.0) or len(out) >= top:
            break
        out.append({"category_code": str(categories[j]), "name_zh": category_label(str(categories[j])),
                    "observed": int(round(o[j])), "expected": round(float(e[j]), 1)})
    return out


class _HexNames:
    """``names[i]`` = hex string of ``cells[i]``, converted on demand (only alert rows need it)."""

    def __init__(self, cells: np.ndarray):
        self.cells = cells

    def __getitem__(self, i) -> str:
        return h3.int_to_str(int(self.cells[int(i)]))


def _bh_cut(p: np.ndarray, mask: np.ndarray) -> float:
    return float(p[mask].max()) if mask.any() else -np.inf


def select_alerts(sw: ScoredWindow, alpha: float = 0.05, by_category: bool = True, dedupe: bool = True,
                  max_alerts: int | None = None, top_drivers: int = 3) -> pd.DataFrame:
    """Alerts of one scored window after BH per family (see the module docstring), sorted by score."""
    rows: list[dict] = []
    hexes = _HexNames(sw.cells)
    res = sw.resolution
    base = {"resolution": res, "window_start": sw.window_start, "window_end": sw.window_end}

    q_cell = bh_qvalues(sw.p_cell)
    cell_hit = fdr_bh(sw.p_cell, alpha)
    # a cell alert that its total alone (×2) would not carry is reported as its strongest category
    wins = sw.family_wins & (
        np.minimum(2 * sw.p_total, 1.0) > alpha * cell_hit.sum() / max(np.isfinite(sw.p_cell).sum(), 1))
    for i in np.flatnonzero(cell_hit):
        if wins[i]:  # carried by one category: say so, in that category's numbers
            _, c, yk, muk, _, _ = (a[sw.family_pair[i]] for a in sw.category_tests())
            code, yy, mm = str(sw.categories[c]), int(round(yk)), float(muk)
            rows.append({"kind": "category", "cell": hexes[i], **base, "observed": yy, "expected": mm,
                         "score": float(sw.score_cell[i]), "p_value": float(sw.p_cell[i]),
                         "q_value": float(q_cell[i]), "category_code": code, "n_cells": 1,
                         "drivers": [{"category_code": code, "name_zh": category_label(code), "observed": yy,
                                      "expected": round(mm, 1)}],
                         "sentence_zh": _sentence("category", hexes[i], sw.window_start, sw.window_end,
                                                  sw.window_days, yy, mm, [], label=category_label(code)),
                         "family": "cell"})
            continue
        drv = _drivers(sw, np.array([i]), top_drivers)
        y, mu = int(round(sw.observed[i])), float(sw.expected[i])
        rows.append({"kind": "cell", "cell": hexes[i], **base, "observed": y, "expected": mu,
                     "score": float(sw.score_cell[i]), "p_value": float(sw.p_cell[i]), "q_value": float(q_cell[i]),
                     "category_code": None, "n_cells": 1, "drivers": drv,
                     "sentence_zh": _sentence("cell", hexes[i], sw.window_start, sw.window_end, sw.window_days, y, mu,
                                              drv), "family": "cell"})

    q_ring = bh_qvalues(sw.p_ring)
    ring_hit = fdr_bh(sw.p_ring, alpha)
    cand = np.flatnonzero(ring_hit & sw.local_max)
    if dedupe and cand.size and cell_hit.any():
        cut = _bh_cut(sw.p_ring, ring_hit)
        _, _, p_ex, _ = sw.ring_tests(keep=~cell_hit, rows=cand)
        cand = cand[p_ex <= cut]
    for i in cand:
        members = sw.W[i].indices
        drv = _drivers(sw, members, top_drivers)
        y, mu = int(round(sw.ring_observed[i])), float(sw.ring_expected[i])
        n_rising = int(((sw.observed[members] > sw.expected[members]) & (sw.observed[members] > 0)).sum())
        rows.append({"kind": "neighbourhood", "cell": hexes[i], **base, "observed": y, "expected": mu,
                     "score": float(sw.score_ring[i]), "p_value": float(sw.p_ring[i]), "q_value": float(q_ring[i]),
                     "category_code": None, "n_cells": int(members.size), "drivers": drv,
                     "sentence_zh": _sentence("neighbourhood", hexes[i], sw.window_start, sw.window_end,
                                              sw.window_days, y, mu, drv, n_cells=int(members.size),
                                              n_rising=n_rising), "family": "neighbourhood"})

    if by_category and sw.has_categories:
        K = sw.observed_cat.shape[1]
        m = sw.cells.size * K  # the family is every cell × category pair; pairs without events have p = 1
        r, c, y, mu, p, score = sw.category_tests()
        flat = r * K + c
        full = np.ones(m)
        full[flat] = p
        q_full = bh_qvalues(full)
        hit = fdr_bh(full, alpha)[flat]
        cat_alert = np.zeros((sw.cells.size, K), dtype=bool)
        cat_alert[r[hit], c[hit]] = True
        if dedupe:
            hit &= ~cell_hit[r]
        for j in np.flatnonzero(hit):
            i, code = int(r[j]), str(sw.categories[c[j]])
            yy, mm = int(round(y[j])), float(mu[j])
            rows.append({"kind": "category", "cell": hexes[i], **base, "observed": yy, "expected": mm,
                         "score": float(score[j]), "p_value": float(p[j]), "q_value": float(q_full[flat[j]]),
                         "category_code": code, "n_cells": 1,
                         "drivers": [{"category_code": code, "name_zh": category_label(code), "observed": yy,
                                      "expected": round(mm, 1)}],
                         "sentence_zh": _sentence("category", hexes[i], sw.window_start, sw.window_end,
                                                  sw.window_days, yy, mm, [], label=category_label(code)),
                         "family": "cell_category"})

        # disk × category: a spread rise of one kind of matter over neighbouring cells
        r2, c2, y2, mu2, p2, score2 = sw.ring_category_tests()
        full = np.ones(m)
        full[r2 * K + c2] = p2
        q2 = bh_qvalues(full)
        pass2 = fdr_bh(full, alpha)
        cut2 = _bh_cut(full, pass2)
        cr, cc, cy, cmu, cp, cs = sw.ring_category_candidates()
        keep = pass2[cr * K + cc]
        if dedupe and keep.any():
            excl = cat_alert | cell_hit[:, None]
            if excl.any():
                p_ex = sw.ring_category_tests(exclude=excl, pairs=(cr[keep], cc[keep]))[4]
                keep[np.flatnonzero(keep)[p_ex > cut2]] = False
            keep &= ~np.isin(cr, cand)  # the centre's neighbourhood alert already names its drivers
        for j in np.flatnonzero(keep):
            i, code = int(cr[j]), str(sw.categories[cc[j]])
            yy, mm = int(round(cy[j])), float(cmu[j])
            members = sw.W[i].indices
            rows.append({"kind": "category", "cell": hexes[i], **base, "observed": yy, "expected": mm,
                         "score": float(cs[j]), "p_value": float(cp[j]), "q_value": float(q2[i * K + cc[j]]),
                         "category_code": code, "n_cells": int(members.size),
                         "drivers": [{"category_code": code, "name_zh": category_label(code), "observed": yy,
                                      "expected": round(mm, 1)}],
                         "sentence_zh": _sentence("category", hexes[i], sw.window_start, sw.window_end,
                                                  sw.window_days, yy, mm, [], n_cells=int(members.size),
                                                  label=category_label(code)), "family": "neighbourhood_category"})

    out = pd.DataFrame(rows, columns=[c for c in ALERT_COLUMNS if c != "ratio"])
    out.insert(ALERT_COLUMNS.index("ratio"), "ratio", out["observed"] / out["expected"].clip(lower=1e-9))
    out = out.sort_values(["score", "observed"], ascending=False, kind="stable").reset_index(drop=True)
    if max_alerts is not None:
        out = out.head(int(max_alerts)).reset_index(drop=True)
    return out


def fit_before(panel: pd.DataFrame, start: int, end: int, *, k: int, model: ExpectedCounts | None,
               by_category: bool | None, cells, period: str) -> tuple[ExpectedCounts, pd.DataFrame, bool]:
    """The expected-count model fitted on the history strictly before day ``start`` (the period never
    inflates its own baseline), the panel rows of the period ``start..end`` and whether categories are
    modelled. ``model`` is a template (cloned; default ``ExpectedCounts(k=k)``); ``by_category=None``
    keeps the template's setting; ``cells`` adds study-area cells to the fitted universe."""
    d = day_numbers(panel["day"].to_numpy())
    if not (d < start).any():
        raise ValueError(f"no history before the {period}")
    win = panel[(d >= start) & (d <= end)]
    est = clone(model) if model is not None else ExpectedCounts(k=k)
    wanted = est.get_params()["by_category"] if by_category is None else by_category
    use_cat = bool(wanted) and "category_code" in panel.columns
    est.set_params(by_category=use_cat)
    wcells = as_cells(win["cell"].to_numpy())
    extra = wcells if cells is None else np.union1d(wcells, as_cells(cells))
    est.fit(panel, end=start - 1, cells=extra,  # fit keeps the days up to ``end``: no copy of the history
            categories=win["category_code"].astype(str).unique() if use_cat and len(win) else None)
    return est, win, use_cat


def score_window(panel: pd.DataFrame, window_end, window_days: int = 7, k: int = 1, alpha: float = 0.05,
                 by_category: bool = True, *, model: ExpectedCounts | None = None, min_observed: int = 3,
                 dedupe: bool = True, max_alerts: int | None = None, top_drivers: int = 3,
                 cells=None) -> pd.DataFrame:
    """Alerts for the window of ``window_days`` days ending at ``window_end`` (inclusive).

    ``panel``: long [cell (uint64), day, n, optional category_code] rows (zeros implicit). The expected
    counts come from ``model`` (an :class:`ExpectedCounts` template, cloned; default
    ``ExpectedCounts(k=k)``) fitted on the history strictly before the window. ``cells`` adds study-area
    cells to the tested universe. Returns the alerts passing BH at ``alpha`` (per family: cells,
    neighbourhoods, categories), sorted by score, with the columns of :data:`ALERT_COLUMNS`.
    """
    end = int(day_numbers(window_end))
    start = end - int(window_days) + 1
    est, win, use_cat = fit_before(panel, start, end, k=k, model=model, by_category=by_category, cells=cells,
                                   period="window")
    sw = score_cells(est, win, end, window_days, k=k, by_category=use_cat, min_observed=min_observed, cells=cells)
    return select_alerts(sw, alpha=alpha, by_category=use_cat, dedupe=dedupe, max_alerts=max_alerts,
                         top_drivers=top_drivers)
