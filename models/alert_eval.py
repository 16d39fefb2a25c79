"""Recall at a fixed number of false alarms per day, on injected anomalies (``bench/anomaly.py``).

An alarm is false when its cell or disk touches no injected cell; recall counts the injected anomalies
that some alarm above the threshold touches. Cells, disks (local maxima, counted only if they stay above
threshold without the cells that alarm alone), their combination, and the category pairs are evaluated
on the same windows (see :func:`evaluate_detection`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.alerts import ScoredWindow, select_alerts
from models.hexgrid import as_cells

__all__ = ["evaluate_detection"]

# --------------------------------------------------------------------------------------------------
# evaluation on injected anomalies
# --------------------------------------------------------------------------------------------------
@dataclass
class _WindowEval:
    n_days: int
    cell_scores: np.ndarray       # candidate cell alarms (p < 1)
    cell_idx: np.ndarray
    cell_fa: np.ndarray           # bool: touches no injected cell
    cell_hits: list               # anomaly ids detected, per candidate
    ring_idx: np.ndarray          # local-max centres (p < 1)
    ring_fa: np.ndarray
    ring_hits: list
    cat_scores: np.ndarray        # (cell, category) pairs (p < 1)
    cat_cell: np.ndarray
    cat_col: np.ndarray
    cat_fa: np.ndarray
    cat_hits: list
    rcat_rows: np.ndarray         # (disk, category) local maxima (p < 1)
    rcat_cols: np.ndarray
    rcat_scores: np.ndarray
    rcat_fa: np.ndarray
    rcat_hits: list
    sw: ScoredWindow
    anom_of_cell: dict
    spike_ids: set


def _prepare(sw: ScoredWindow, truth: pd.DataFrame) -> _WindowEval:
    cells = sw.cells
    anom_of_cell: dict[int, set] = {}
    spike_ids: set = set()
    for aid, kind, c in zip(truth["anomaly_id"], truth["kind"], truth["_cell"], strict=True):
        anom_of_cell.setdefault(int(c), set()).add(aid)
        if kind == "spike":
            spike_ids.add(aid)
    in_truth = np.isin(cells, np.array(sorted(anom_of_cell), dtype=np.uint64))

    ci = np.flatnonzero(sw.p_cell < 1.0)
    c_hits = [anom_of_cell.get(int(cells[i]), set()) for i in ci]

    ri = np.flatnonzero(sw.local_max & (sw.p_ring < 1.0))
    r_hits = [_disk_hits(sw, i, in_truth, anom_of_cell, spike_ids) for i in ri]
    r_fa = np.array([h is None for h in r_hits], dtype=bool)
    r_hits = [h or set() for h in r_hits]

    empty = np.zeros(0, dtype=np.int64)
    k_cell, k_col, k_score = empty, empty, np.zeros(0)
    rc_rows, rc_cols, rc_score = empty, empty, np.zeros(0)
    if sw.has_categories:
        r, c, _, _, p, score = sw.category_tests()
        keep = p < 1.0
        k_cell, k_col, k_score = r[keep], c[keep], score[keep]
        rc_rows, rc_cols, _, _, _, rc_score = sw.ring_category_candidates()
    k_hits = [anom_of_cell.get(int(cells[i]), set()) for i in k_cell]
    rc = [_disk_hits(sw, int(i), in_truth, anom_of_cell, spike_ids) for i in rc_rows]
    return _WindowEval(sw.window_days, sw.score_cell[ci], ci, ~in_truth[ci], c_hits, ri, r_fa, r_hits,
                       k_score, k_cell, k_col, ~in_truth[k_cell], k_hits, rc_rows, rc_cols, rc_score,
                       np.array([h is None for h in rc], dtype=bool), [h or set() for h in rc],
                       sw, anom_of_cell, spike_ids)


def _disk_hits(sw: ScoredWindow, i: int, in_truth: np.ndarray, anom_of_cell: dict, spike_ids: set) -> set | None:
    """Anomalies a disk alarm centred on cell ``i`` detects; ``None`` = a false alarm (touches nothing)."""
    members = sw.W[i].indices
    touch = in_truth[members]
    if not touch.any():
        return None
    hits = set(anom_of_cell.get(int(sw.cells[i]), set()))  # centred inside the anomaly
    for m in members[touch]:  # or a spike inside the disk
        hits |= {a for a in anom_of_cell[int(sw.cells[m])] if a in spike_ids}
    return hits


def _alarms(ev: _WindowEval, mode: str, t: float) -> tuple[int, set]:
    """(false alarms, detected anomaly ids) of one window at score threshold ``t`` (alarm: score > t)."""
    fa, det = 0, set()
    cell_on = ev.cell_scores > t
    if mode in ("cell", "combined", "all"):
        fa += int((cell_on & ev.cell_fa).sum())
        for j in np.flatnonzero(cell_on & ~ev.cell_fa):
            det |= ev.cell_hits[j]
    if mode in ("neighbourhood", "combined", "all") and ev.ring_idx.size:
        if mode != "neighbourhood" and cell_on.any():
            keep = np.ones(ev.sw.cells.size, dtype=bool)
            keep[ev.cell_idx[cell_on]] = False
            scores = ev.sw.ring_tests(keep=keep, rows=ev.ring_idx)[3]
        else:
            scores = ev.sw.score_ring[ev.ring_idx]
        on = scores > t
        fa += int((on & ev.ring_fa).sum())
        for j in np.flatnonzero(on & ~ev.ring_fa):
            det |= ev.ring_hits[j]
    cat_on = ev.cat_scores > t
    if mode in ("category", "all") and ev.cat_scores.size:
        on = cat_on.copy()
        if mode == "all" and cell_on.any():  # a category alarm in a cell that alarms anyway is not another alarm
            on &= ~np.isin(ev.cat_cell, ev.cell_idx[cell_on])
        fa += int((on & ev.cat_fa).sum())
        for j in np.flatnonzero(on & ~ev.cat_fa):
            det |= ev.cat_hits[j]
    if mode == "all" and ev.rcat_scores.size:
        on = ev.rcat_scores > t
        if on.any() and (cell_on.any() or cat_on.any()):
            # a disk × category alarm must stay above t without the cells / pairs that alarm alone
            excl = np.zeros(ev.sw.expected_cat.shape, dtype=bool)
            excl[ev.cell_idx[cell_on], :] = True
            excl[ev.cat_cell[cat_on], ev.cat_col[cat_on]] = True
            idx = np.flatnonzero(on)
            sc = ev.sw.ring_category_tests(exclude=excl, pairs=(ev.rcat_rows[idx], ev.rcat_cols[idx]))[5]
            on[idx[sc <= t]] = False
        fa += int((on & ev.rcat_fa).sum())
        for j in np.flatnonzero(on & ~ev.rcat_fa):
            det |= ev.rcat_hits[j]
    return fa, det


def _bh_alarms(ev: _WindowEval, alpha: float) -> tuple[int, set]:
    """(false alarms, detected ids) of exactly what :func:`select_alerts` emits for this window."""
    sw = ev.sw
    alerts = select_alerts(sw, alpha=alpha, by_category=sw.observed_cat is not None, top_drivers=0)
    if alerts.empty:
        return 0, set()
    in_truth = np.isin(sw.cells, np.array(sorted(ev.anom_of_cell), dtype=np.uint64))
    idx = np.searchsorted(sw.cells, as_cells(alerts["cell"].to_numpy()))
    fa, det = 0, set()
    for kind, i, n_cells in zip(alerts["kind"], idx, alerts["n_cells"], strict=True):
        if kind == "neighbourhood" or n_cells > 1:
            hits = _disk_hits(sw, int(i), in_truth, ev.anom_of_cell, ev.spike_ids)
        else:
            hits = ev.anom_of_cell.get(int(sw.cells[i])) if in_truth[i] else None
        if hits is None:
            fa += 1
        else:
            det |= hits
    return fa, det


def evaluate_detection(windows: Iterable[ScoredWindow], truth: pd.DataFrame,
                       fa_per_day: Sequence[float] = (1, 5, 20),
                       modes: Sequence[str] = ("cell", "neighbourhood", "combined", "all"),
                       bh_alpha: float | None = 0.05) -> pd.DataFrame:
    """Recall of injected anomalies at fixed false alarms per day (city-wide), per detector mode.

    ``windows``: scored windows (:func:`score_cells`). ``truth``: one row per anomalous cell with
    ``anomaly_id``, ``kind`` (``spike`` | ``cluster``), ``cell`` (uint64 or hex) and either
    ``window_end`` (the end date of its window; one window per date) or ``window_id`` (the index of its
    window in ``windows``, for replicate windows of the same date).

    Alarms at threshold t (score > t): ``cell`` — cells; ``neighbourhood`` — local maxima of the disk
    score; ``combined`` — both, a disk counting only if it stays above t without the cells that alarm
    alone; ``all`` — combined + (cell, category) pairs in cells without a cell alarm; ``category`` —
    pairs alone. An alarm is *false* when its footprint (cell, or disk) touches no injected cell of its
    window; it *detects* an anomaly when the cell is one of the anomaly's cells, or the disk is centred
    on one of them (or, for a spike, contains it); alarms touching an anomaly otherwise are neither.
    For each budget the threshold is the smallest keeping false alarms ≤ ``fa_per_day`` × the total
    number of window days. With ``bh_alpha`` the operational point — exactly the alerts of
    :func:`select_alerts` at that alpha — is reported as ``mode='bh'``.

    Returns rows (mode, fa_target, threshold, fa_per_day, kind, n, detected, recall).
    """
    windows = list(windows)
    truth = truth.copy()
    truth["_cell"] = as_cells(truth["cell"].to_numpy())
    if "window_id" in truth.columns:
        groups = {int(i): g for i, g in truth.groupby("window_id")}
        per = [groups.get(i, truth.iloc[:0]) for i in range(len(windows))]
    else:
        truth["_end"] = pd.to_datetime(truth["window_end"]).dt.date
        groups = {e: g for e, g in truth.groupby("_end")}
        per = [groups.get(sw.window_end, truth.iloc[:0]) for sw in windows]
    evs = [_prepare(sw, t) for sw, t in zip(windows, per, strict=True)]
    days = float(sum(ev.n_days for ev in evs))
    kinds = truth.drop_duplicates("anomaly_id").set_index("anomaly_id")["kind"]
    ids_by_kind = {k: set(kinds.index[kinds == k]) for k in sorted(kinds.unique())}
    has_cat = any(ev.cat_scores.size for ev in evs)

    def run(mode: str, t: float) -> tuple[int, set]:
        fa, det = 0, set()
        for ev in evs:
            f, d = _alarms(ev, mode, t)
            fa += f
            det |= d
        return fa, det

    def emit(mode, f, t, fa, det):
        for kind, ids in ids_by_kind.items():
            out.append({"mode": mode, "fa_target": f, "threshold": t, "fa_per_day": fa / days, "kind": kind,
                        "n": len(ids), "detected": len(ids & det), "recall": len(ids & det) / max(len(ids), 1)})

    out: list[dict] = []
    for mode in modes:
        if mode in ("all", "category") and not has_cat:
            continue
        pools = {"cell": [ev.cell_scores[ev.cell_fa] for ev in evs],
                 "neighbourhood": [ev.sw.score_ring[ev.ring_idx[ev.ring_fa]] for ev in evs],
                 "category": [ev.cat_scores[ev.cat_fa] for ev in evs]}
        pools_all = pools["cell"] + pools["neighbourhood"] + pools["category"] + [ev.rcat_scores for ev in evs]
        top = max(float(np.max(np.concatenate(pools_all + [np.zeros(1)]))), 1.0)
        for f in fa_per_day:
            allowed = f * days
            if mode in pools:  # no interaction: the threshold is an order statistic of the false-alarm scores
                fa_scores = np.sort(np.concatenate(pools[mode] + [np.zeros(0)]))[::-1]
                n_allowed = int(np.floor(allowed))
                t = float(fa_scores[n_allowed]) if fa_scores.size > n_allowed else -np.inf
            else:  # bisection (false alarms are non-increasing in t up to the disk recomputation)
                lo, hi = -50.0, top + 1.0
                for _ in range(40):
                    if hi - lo < 1e-4:
                        break
                    mid = 0.5 * (lo + hi)
                    if run(mode, mid)[0] <= allowed:
                        hi = mid
                    else:
                        lo = mid
                t = hi
            fa, det = run(mode, t)
            emit(mode, f, t, fa, det)
    if bh_alpha is not None:
        fa, det = 0, set()
        for ev in evs:
            f, d = _bh_alarms(ev, bh_alpha)
            fa += f
            det |= d
        emit("bh", np.nan, np.nan, fa, det)
    return pd.DataFrame(out)
