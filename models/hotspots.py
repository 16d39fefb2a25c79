"""Getis-Ord Gi* on H3 neighbourhoods for a whole cells × slices cube, and Emerging Hot Spot classes.

* :func:`gi_star` — analytic Gi* (self included, binary weights) for every slice in one sparse product;
  identical to ``esda.G_Local(y, w, star=True, transform="B").Zs`` slice by slice.
* :func:`emerging_hotspots` — Esri's Emerging Hot Spot Analysis (EHSA) pattern per cell from the Gi*
  z/p series (FDR per slice) and a Mann–Kendall trend on the z series.
* :func:`hotspot_table` — long frame (cell, slice, count) in, one row per cell out.

Gi* on raw counts maps *levels* (where it is persistently busy), not anomalies; to target "unusual",
feed residuals (observed − expected) to :func:`gi_star` instead of counts (see analytics-anchors §3).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.hexgrid import as_cells, kring_weights
from models.stats import fdr_bh, mann_kendall, norm_two_sided_p

__all__ = [
    "EHSA_CLASSES",
    "EHSA_LABELS_EN",
    "EHSA_LABELS_ZH",
    "GLOBAL_WINDOWS",
    "emerging_hotspots",
    "gi_star",
    "gi_star_z",
    "hotspot_table",
]

# --------------------------------------------------------------------------------------------------
# Gi*
# --------------------------------------------------------------------------------------------------


def _binary_with_self(W) -> sp.csr_matrix:
    """``W`` as a binary CSR matrix with a unit diagonal (the Gi* neighbourhood includes the cell)."""
    W = sp.csr_matrix(W)
    if W.shape[0] != W.shape[1]:
        raise ValueError("W must be square")
    if not (np.all(W.data == 1.0) and np.all(W.diagonal() == 1.0)):
        W = W.copy()
        W.eliminate_zeros()
        W.data = np.ones_like(W.data, dtype=np.float64)
        W = W.maximum(sp.identity(W.shape[0], format="csr", dtype=np.float64)).tocsr()
    return W


def _cube_and_weights(counts, W) -> tuple[np.ndarray, sp.csr_matrix, bool]:
    """``counts`` as a float cells × slices array (a 1-D array as one slice, flagged), ``W`` binary with self."""
    X = np.asarray(counts, dtype=np.float64)
    one_d = X.ndim == 1
    if one_d:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError("counts must be n_cells × n_slices")
    W = _binary_with_self(W)
    if W.shape[0] != X.shape[0]:
        raise ValueError(f"W is {W.shape[0]}×{W.shape[0]} but counts has {X.shape[0]} rows")
    return X, W, one_d


def gi_star_z(counts, W) -> np.ndarray:
    """Gi* z-scores only (see :func:`gi_star`); skips the normal CDF, the costliest step for a big cube."""
    X, W, one_d = _cube_and_weights(counts, W)
    n = X.shape[0]
    k = np.asarray(W.sum(axis=1)).ravel()
    mean = X.sum(axis=0) / n  # (a NumPy reduction, not BLAS: OpenBLAS threads stall on a busy box)
    mean_sq = np.einsum("ij,ij->j", X, X) / n
    var = mean_sq - mean * mean  # population variance, E[x²] − E[x]², as esda
    var[var <= 1e-10 * mean_sq] = 0.0  # a constant slice, up to rounding
    sd = np.sqrt(var)
    scale = np.sqrt(k * (n - k) / max(n - 1, 1))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(scale > 0, 1.0 / scale, 0.0)
        inv_sd = np.where(sd > 0, 1.0 / sd, 0.0)
    # Σ_j w_ij x_j − k_i x̄ = Σ_j w_ij (x_j − x̄) since k_i = Σ_j w_ij: centre and scale X first
    xc = np.subtract(X, mean[None, :])
    xc *= inv_sd[None, :]
    z = W @ xc  # the only O(nnz · slices) step
    z *= inv_scale[:, None]
    return z[:, 0] if one_d else z


GLOBAL_WINDOWS = ("slice", "cube")


def gi_star(counts, W, time_step: int = 0, global_window: str = "slice") -> tuple[np.ndarray, np.ndarray]:
    """Analytic Getis-Ord Gi* z-scores and two-sided normal p-values for every slice at once.

    ``counts``: n_cells × n_slices (a 1-D array is one slice; the output keeps the input's shape).
    ``W``: n_cells × n_cells adjacency (e.g. :func:`models.hexgrid.kring_weights`); it is used as
    binary weights with the diagonal forced to 1 (Gi*, self included).

    With ``k_i = Σ_j w_ij``, per slice mean ``x̄`` and population s.d. ``s`` over all n cells::

        z_i = (Σ_j w_ij x_j − k_i x̄) / ( s · sqrt( k_i (n − k_i) / (n − 1) ) )

    which is Ord & Getis (1995) and equals esda's ``G_Local(star=True, transform="B").Zs``.
    ``p = 2·P(Z > |z|)`` (esda's ``p_norm`` is one-sided). A slice with no variation (all counts equal)
    gets ``z = 0, p = 1``; so does a cell whose neighbourhood is the whole set (``k_i = n``).
    Works on residuals (observed − expected) as well as on counts.

    Space-time Gi* as in ArcGIS's Emerging Hot Spot Analysis: ``time_step = N > 0`` widens each bin's
    neighbourhood to its k-ring in the current slice *and the N slices before it* (fewer at the start of
    the series), Esri's "neighborhood time step". ``global_window`` is the set of bins a neighbourhood is
    compared with: ``"slice"`` (its own slice; only with ``time_step = 0``) or ``"cube"`` (every bin of
    the cube, Esri's "entire cube", the default of ArcGIS Pro). With the cube window the formula above
    holds with n the number of bins (cells × slices) and k_i the bins in the space-time neighbourhood,
    which is esda's Gi* on the cube flattened to one graph (tested).
    """
    if global_window not in GLOBAL_WINDOWS:
        raise ValueError(f"global_window must be one of {GLOBAL_WINDOWS}")
    if time_step < 0 or int(time_step) != time_step:
        raise ValueError("time_step must be a whole number ≥ 0")
    if time_step and global_window == "slice":
        raise ValueError("a space-time neighbourhood (time_step > 0) reaches into earlier slices; compare it "
                         "with the whole cube (global_window='cube')")
    z = gi_star_z(counts, W) if global_window == "slice" else _gi_star_z_cube(counts, W, int(time_step))
    return z, norm_two_sided_p(z)


def _gi_star_z_cube(counts, W, time_step: int) -> np.ndarray:
    """Gi* z-scores of every bin against the whole cube, over the k-ring × (this and ``time_step``
    earlier slices) neighbourhood (see :func:`gi_star`)."""
    X, W, one_d = _cube_and_weights(counts, W)
    n_cells, n_slices = X.shape
    n = n_cells * n_slices  # bins in the cube
    mean = X.sum() / n
    mean_sq = np.einsum("ij,ij->", X, X) / n
    var = mean_sq - mean * mean
    if n < 2 or var <= 1e-10 * mean_sq:  # a constant cube, up to rounding
        z = np.zeros_like(X)
    else:
        xc = np.subtract(X, mean)
        xc *= 1.0 / np.sqrt(var)
        z = W @ xc  # Σ over the k-ring of the centred, scaled bins, per slice
        np.cumsum(z, axis=1, out=z)  # and over the slices t − time_step … t
        z[:, time_step + 1:] -= z[:, :-(time_step + 1)].copy()
        degree = np.asarray(W.sum(axis=1)).ravel()
        for t in range(min(time_step + 1, n_slices)):  # slice t ≥ time_step pools time_step + 1 slices
            k = degree * (t + 1)  # bins in each neighbourhood
            with np.errstate(divide="ignore"):
                inv_scale = np.where(k < n, 1.0 / np.sqrt(np.clip(k * (n - k), 1e-300, None) / (n - 1)), 0.0)
            if t < time_step:
                z[:, t] *= inv_scale
            else:
                z[:, t:] *= inv_scale[:, None]
    return z[:, 0] if one_d else z


# --------------------------------------------------------------------------------------------------
# Emerging Hot Spot Analysis
# --------------------------------------------------------------------------------------------------

EHSA_CLASSES: tuple[str, ...] = (
    "new_hot", "consecutive_hot", "intensifying_hot", "persistent_hot",
    "diminishing_hot", "sporadic_hot", "oscillating_hot", "historical_hot",
    "new_cold", "consecutive_cold", "intensifying_cold", "persistent_cold",
    "diminishing_cold", "sporadic_cold", "oscillating_cold", "historical_cold",
    "no_pattern",
)

EHSA_LABELS_EN: dict[str, str] = {
    "new_hot": "New Hot Spot",
    "consecutive_hot": "Consecutive Hot Spot",
    "intensifying_hot": "Intensifying Hot Spot",
    "persistent_hot": "Persistent Hot Spot",
    "diminishing_hot": "Diminishing Hot Spot",
    "sporadic_hot": "Sporadic Hot Spot",
    "oscillating_hot": "Oscillating Hot Spot",
    "historical_hot": "Historical Hot Spot",
    "new_cold": "New Cold Spot",
    "consecutive_cold": "Consecutive Cold Spot",
    "intensifying_cold": "Intensifying Cold Spot",
    "persistent_cold": "Persistent Cold Spot",
    "diminishing_cold": "Diminishing Cold Spot",
    "sporadic_cold": "Sporadic Cold Spot",
    "oscillating_cold": "Oscillating Cold Spot",
    "historical_cold": "Historical Cold Spot",
    "no_pattern": "No Pattern Detected",
}

EHSA_LABELS_ZH: dict[str, str] = {
    "new_hot": "新热点",
    "consecutive_hot": "连续热点",
    "intensifying_hot": "加剧热点",
    "persistent_hot": "持续热点",
    "diminishing_hot": "减弱热点",
    "sporadic_hot": "零星热点",
    "oscillating_hot": "振荡热点",
    "historical_hot": "历史热点",
    "new_cold": "新冷点",
    "consecutive_cold": "连续冷点",
    "intensifying_cold": "加剧冷点",
    "persistent_cold": "持续冷点",
    "diminishing_cold": "减弱冷点",
    "sporadic_cold": "零星冷点",
    "oscillating_cold": "振荡冷点",
    "historical_cold": "历史冷点",
    "no_pattern": "无明显模式",
}

_FDR_MODES = ("slice", "cube", "none")


def significance(p, alpha: float = 0.05, fdr: str = "slice") -> np.ndarray:
    """Significant bins of a cells × slices p array: BH-FDR per slice (default), over the cube, or none."""
    p = np.asarray(p, dtype=np.float64)
    if fdr == "slice":
        return fdr_bh(p, alpha, axis=0)
    if fdr == "cube":
        return fdr_bh(p, alpha)
    if fdr == "none":
        return np.isfinite(p) & (p <= alpha)
    raise ValueError(f"fdr must be one of {_FDR_MODES}")


def _final_run(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True values that ends at the last column, per row."""
    off = ~mask
    return np.where(off.any(axis=1), np.argmax(off[:, ::-1], axis=1), mask.shape[1])


def emerging_hotspots(
    z,
    p,
    alpha: float = 0.05,
    *,
    fdr: str = "slice",
    trend_alpha: float | None = None,
    trend: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Esri Emerging Hot Spot Analysis pattern for each cell (row) of a cells × slices Gi* cube.

    A bin is a *hot* (*cold*) spot when it is significant after BH-FDR at ``alpha`` (per slice by
    default, ``fdr="cube"`` for the whole cube, ``"none"`` for raw p) and ``z > 0`` (``z < 0``). The
    trend is Mann–Kendall on the cell's z series (significant when its p < ``trend_alpha``, default
    ``alpha``); pass ``trend=(tau, z, p)`` to reuse one already computed.

    Definitions follow ArcGIS Pro, "How Emerging Hot Spot Analysis works"
    (pro.arcgis.com/en/pro-app/latest/tool-reference/space-time-pattern-mining/learnmoreemerging.htm);
    "≥ 90 %" means at least 90 % of the n slices. Hot versions (cold ones mirror hot↔cold, and a
    "rising" cold trend is z decreasing):

    * persistent — hot in ≥ 90 % of slices, final slice hot, no significant trend;
    * intensifying — hot in ≥ 90 %, final slice hot, significant increasing trend;
    * diminishing — hot in ≥ 90 %, final slice hot, significant decreasing trend;
    * historical — hot in ≥ 90 %, but the final slice is not hot;
    * new — hot in the final slice only (never significant before);
    * consecutive — one uninterrupted run of ≥ 2 hot slices at the end, never hot before it,
      < 90 % hot;
    * sporadic — hot in the final slice, on-and-off hot before, < 90 % hot, never cold;
    * oscillating — hot in the final slice, cold in some earlier slice, < 90 % hot;
    * no_pattern — none of the above.

    Where Esri's text lets two classes match we resolve it as follows (documented, tested):
    the ≥ 90 % classes are decided first (so a cell cold in ≥ 90 % of slices and hot at the end is a
    historical cold spot); a final-hot cell with any earlier cold bin is oscillating, never new or
    consecutive; a ≥ 90 % cell whose final slice is not hot is historical even without a trend.
    The final-slice requirement for sporadic is Pro's current wording (ArcMap 10.x did not have it).

    The z / p cube may come from a purely spatial Gi* per slice or from a space-time one (Esri's
    "neighborhood time step", :func:`gi_star` with ``time_step``); the classes are read the same way.

    Returns an array of class codes (keys of :data:`EHSA_LABELS_EN` / :data:`EHSA_LABELS_ZH`).
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError("z must be n_cells × n_slices")
    sig = significance(p, alpha, fdr)
    if sig.shape != z.shape:
        raise ValueError("z and p must have the same shape")
    n_cells, n = z.shape
    if trend is None:
        trend = mann_kendall(z)
    _, mk_z, mk_p = (np.asarray(a, dtype=np.float64) for a in trend)
    t_alpha = alpha if trend_alpha is None else trend_alpha
    t_sig = np.isfinite(mk_p) & (mk_p < t_alpha)
    up = t_sig & (mk_z > 0)
    down = t_sig & (mk_z < 0)

    out = np.full(n_cells, "no_pattern", dtype=object)
    if n == 0:
        return out
    hot = sig & (z > 0)
    cold = sig & (z < 0)

    def family(spot: np.ndarray, other: np.ndarray, tag: str, stronger: np.ndarray, weaker: np.ndarray):
        count = spot.sum(axis=1)
        mostly = count * 10 >= 9 * n  # ≥ 90 % of slices, in exact integer arithmetic
        last = spot[:, -1]
        run = _final_run(spot)
        other_any = other.any(axis=1)
        return [
            (mostly & last & stronger, f"intensifying_{tag}"),
            (mostly & last & weaker, f"diminishing_{tag}"),
            (mostly & last & ~stronger & ~weaker, f"persistent_{tag}"),
            (mostly & ~last, f"historical_{tag}"),
            (~mostly & last & other_any, f"oscillating_{tag}"),
            (~mostly & last & ~other_any & (count == 1), f"new_{tag}"),
            (~mostly & last & ~other_any & (run >= 2) & (count == run), f"consecutive_{tag}"),
            (~mostly & last & ~other_any & (count > run), f"sporadic_{tag}"),
        ]

    hot_rules = family(hot, cold, "hot", up, down)
    cold_rules = family(cold, hot, "cold", down, up)
    # ≥ 90 % classes first (4 per family), then the final-slice ones; first match wins
    rules = hot_rules[:4] + cold_rules[:4] + hot_rules[4:] + cold_rules[4:]
    done = np.zeros(n_cells, dtype=bool)
    for mask, code in rules:
        take = mask & ~done
        out[take] = code
        done |= take
    return out


# --------------------------------------------------------------------------------------------------
# Table wrapper
# --------------------------------------------------------------------------------------------------


def hotspot_table(
    frame: pd.DataFrame,
    cell_col: str,
    slice_col: str,
    count_col: str,
    k: int = 1,
    alpha: float = 0.05,
    *,
    cells=None,
    slices: Sequence | None = None,
    fdr: str = "slice",
    trend_alpha: float | None = None,
    time_step: int = 0,
    global_window: str = "slice",
) -> pd.DataFrame:
    """Gi* per slice + EHSA class per cell from a long (cell, slice, count) frame.

    Missing (cell, slice) pairs count 0; duplicate rows are summed; rows with cell 0 (no point) are
    dropped. The study area is the cells in
    ``frame`` plus ``cells`` (pass every H3 cell of the jurisdiction so that empty cells take part —
    Gi* on only the cells that ever had an event overstates clustering); the time axis is the sorted
    slices in ``frame`` plus ``slices``. Neighbourhoods are k-rings among those cells, in the slice itself
    and the ``time_step`` slices before it, compared with ``global_window`` (see :func:`gi_star`).

    Returns one row per cell (index ``cell``, uint64) with:
    ``count`` (latest slice), ``z``, ``p`` (latest-slice Gi*), ``significant`` (latest slice, after
    FDR), ``spot`` ('hot' / 'cold' / ''), ``n_hot`` / ``n_cold`` (significant slices), ``mk_tau``,
    ``mk_z``, ``mk_p``, ``trend`` ('up' / 'down' / 'none'), ``pattern`` (code), ``pattern_en``,
    ``pattern_zh``. ``frame.attrs`` is not used; the slice analysed last is in ``out.attrs["latest"]``.
    """
    df = frame[[cell_col, slice_col, count_col]]
    cell_ids = as_cells(df[cell_col].to_numpy())
    if np.any(cell_ids == 0):  # 0 = "no cell" (no usable point; geodata.h3cells convention)
        df = df[cell_ids != 0]
        cell_ids = cell_ids[cell_ids != 0]
    all_cells = np.unique(cell_ids if cells is None else np.concatenate([cell_ids, as_cells(cells)]))
    all_cells = all_cells[all_cells != 0]
    slice_vals = pd.Index(df[slice_col].unique())
    if slices is not None:
        slice_vals = slice_vals.append(pd.Index(list(slices))).unique()
    slice_vals = slice_vals.sort_values()
    if len(all_cells) == 0 or len(slice_vals) == 0:
        raise ValueError("no cells or no slices")

    ri = np.searchsorted(all_cells, cell_ids)
    ci = slice_vals.get_indexer(df[slice_col])
    X = np.zeros((len(all_cells), len(slice_vals)), dtype=np.float64)
    np.add.at(X, (ri, ci), df[count_col].to_numpy(dtype=np.float64))

    W = kring_weights(all_cells, k=k, include_self=True)
    z, p = gi_star(X, W, time_step=time_step, global_window=global_window)
    sig = significance(p, alpha, fdr)
    tau, mk_z, mk_p = mann_kendall(z)
    t_alpha = alpha if trend_alpha is None else trend_alpha
    pattern = emerging_hotspots(z, p, alpha, fdr=fdr, trend_alpha=t_alpha, trend=(tau, mk_z, mk_p))

    t_sig = np.isfinite(mk_p) & (mk_p < t_alpha)
    last_sig = sig[:, -1]
    out = pd.DataFrame(
        {
            "count": X[:, -1],
            "z": z[:, -1],
            "p": p[:, -1],
            "significant": last_sig,
            "spot": np.where(last_sig & (z[:, -1] > 0), "hot", np.where(last_sig & (z[:, -1] < 0), "cold", "")),
            "n_hot": (sig & (z > 0)).sum(axis=1),
            "n_cold": (sig & (z < 0)).sum(axis=1),
            "mk_tau": tau,
            "mk_z": mk_z,
            "mk_p": mk_p,
            "trend": np.where(t_sig & (mk_z > 0), "up", np.where(t_sig & (mk_z < 0), "down", "none")),
            "pattern": pattern,
            "pattern_en": [EHSA_LABELS_EN[c] for c in pattern],
            "pattern_zh": [EHSA_LABELS_ZH[c] for c in pattern],
        },
        index=pd.Index(all_cells, name="cell"),
    )
    out.attrs["latest"] = slice_vals[-1]
    out.attrs["n_slices"] = len(slice_vals)
    return out


def hotspots_of_weeks(con, county, resolution: int, slice_end, weeks: int, time_step: int = 0) -> pd.DataFrame:
    """:func:`hotspot_table` of the warehouse's H3 aggregates (``hex.cell_day``) at ``resolution``: ``weeks`` weekly
    slices ending on ``slice_end`` (a date, the last slice's last day), over every cell covering ``county`` (a
    shapely geometry; empty cells take part). The build scores the latest weeks with it; the weekly brief of a past
    week scores the weeks up to that week's Sunday, so that it reads the same whenever it is made."""
    from geodata.h3cells import cells_covering

    start = pd.Timestamp(slice_end) - pd.Timedelta(weeks=weeks) + pd.Timedelta(days=1)
    frame = con.execute(
        "SELECT cell, (datediff('day', $start::DATE, day) // 7)::INTEGER AS slice, sum(n)::BIGINT AS n "
        "FROM hex.cell_day WHERE resolution = $res AND day BETWEEN $start AND $end GROUP BY ALL",
        {"res": int(resolution), "start": start.date(), "end": pd.Timestamp(slice_end).date()}).df()
    return hotspot_table(frame, "cell", "slice", "n", k=1, alpha=0.05, cells=cells_covering(county, resolution),
                         slices=range(weeks), time_step=time_step,
                         global_window="cube" if time_step else "slice")
