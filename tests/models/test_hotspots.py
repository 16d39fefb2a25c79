"""Gi* (vs esda), Emerging Hot Spot classes, the hotspot table, and a real-data check on Portland."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from h3.api import basic_int as h3i
from scipy import stats

from models.hexgrid import kring_weights
from models.hotspots import (
    EHSA_CLASSES,
    EHSA_LABELS_EN,
    EHSA_LABELS_ZH,
    emerging_hotspots,
    gi_star,
    hotspot_table,
)

PATCH_CENTRE = h3i.latlng_to_cell(22.78, 115.37, 9)  # 汕尾市城区, res 9


def _esda_gi_star(y: np.ndarray, W_noself) -> tuple[np.ndarray, np.ndarray]:
    esda = pytest.importorskip("esda")
    from libpysal.weights import WSP

    w = WSP(W_noself).to_W(silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = esda.G_Local(y, w, star=True, transform="B", permutations=0)
    return g.Zs, g.p_norm


@pytest.mark.parametrize("k", [1, 2])
def test_gi_star_matches_esda_on_h3_patch(k):
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 9), dtype=np.uint64)  # 271 cells
    rng = np.random.default_rng(10 + k)
    cells = cells[rng.random(cells.size) < 0.85]  # ragged patch with holes
    lam = rng.gamma(1.0, 2.0, size=(cells.size, 1))
    X = rng.poisson(lam, size=(cells.size, 6)).astype(float)
    z, p = gi_star(X, kring_weights(cells, k=k))
    W0 = kring_weights(cells, k=k, include_self=False)
    for t in range(X.shape[1]):
        zs, p_one_sided = _esda_gi_star(X[:, t], W0)
        np.testing.assert_allclose(z[:, t], zs, atol=1e-6, rtol=0)
        np.testing.assert_allclose(p[:, t], 2 * p_one_sided, atol=1e-9)


def _space_time_weights(W0, n_slices: int, time_step: int):
    """The cube flattened to one graph (bin = slice * n_cells + cell): bin (c, t) neighbours the k-ring of c
    in slices t − time_step … t, and c itself in the earlier ones; itself left out (esda adds it for Gi*)."""
    import scipy.sparse as sp

    n = W0.shape[0]
    W_self = (sp.csr_matrix(W0) + sp.identity(n, format="csr")).tocsr()
    W_self.data[:] = 1.0
    blocks = [[None] * n_slices for _ in range(n_slices)]
    for t in range(n_slices):
        for tau in range(max(0, t - time_step), t + 1):
            blocks[t][tau] = W_self if tau < t else sp.csr_matrix(W0)
        for tau in range(n_slices):
            if blocks[t][tau] is None:
                blocks[t][tau] = sp.csr_matrix((n, n))
    return sp.bmat(blocks, format="csr")


@pytest.mark.parametrize("k,time_step", [(1, 0), (1, 1), (2, 2)])
def test_space_time_gi_star_matches_esda_on_the_flattened_cube(k, time_step):
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 8), dtype=np.uint64)
    rng = np.random.default_rng(20 + k + time_step)
    cells = cells[rng.random(cells.size) < 0.85]
    lam = rng.gamma(1.0, 2.0, size=(cells.size, 1)) * np.linspace(0.5, 1.5, 5)[None, :]  # a rising series
    X = rng.poisson(lam).astype(float)
    z, p = gi_star(X, kring_weights(cells, k=k), time_step=time_step, global_window="cube")
    W_flat = _space_time_weights(kring_weights(cells, k=k, include_self=False), X.shape[1], time_step)
    zs, p_one_sided = _esda_gi_star(X.T.ravel(), W_flat)  # slice-major, as the flattened graph
    np.testing.assert_allclose(z, zs.reshape(X.shape[1], -1).T, atol=1e-6, rtol=0)
    np.testing.assert_allclose(p, 2 * p_one_sided.reshape(X.shape[1], -1).T, atol=1e-9)


def test_space_time_gi_star_arguments_and_degenerate_cube():
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 3), dtype=np.uint64)
    W = kring_weights(cells)
    X = np.random.default_rng(1).poisson(2, size=(cells.size, 4)).astype(float)
    with pytest.raises(ValueError, match="global_window"):
        gi_star(X, W, time_step=1)  # earlier slices are outside a per-slice comparison
    with pytest.raises(ValueError, match="global_window must be"):
        gi_star(X, W, global_window="week")
    with pytest.raises(ValueError, match="whole number"):
        gi_star(X, W, time_step=-1, global_window="cube")
    z, p = gi_star(np.full_like(X, 3.0), W, time_step=1, global_window="cube")
    assert np.all(z == 0) and np.all(p == 1)
    # a neighbourhood reaching back: a burst in slice 1 still raises the cell's z in slice 2, not in slice 0
    X = np.zeros((cells.size, 4))
    X[0, 1] = 9.0
    z1, _ = gi_star(X, W, time_step=1, global_window="cube")
    z0, _ = gi_star(X, W, time_step=0, global_window="cube")
    assert z1[0, 2] > 2 and z0[0, 2] < 0 and z1[0, 0] < 0


def test_gi_star_shapes_weights_and_degenerate_slices():
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 3), dtype=np.uint64)
    rng = np.random.default_rng(0)
    X = rng.poisson(3, size=(cells.size, 4)).astype(float)
    X[:, 2] = 5.0  # constant slice
    z, p = gi_star(X, kring_weights(cells))
    assert z.shape == p.shape == X.shape
    assert np.all(z[:, 2] == 0) and np.all(p[:, 2] == 1)
    z_noself, _ = gi_star(X, kring_weights(cells, include_self=False) * 3.0)  # binarised, self added
    np.testing.assert_allclose(z_noself, z)
    z1, p1 = gi_star(X[:, 0], kring_weights(cells))
    np.testing.assert_allclose(z1, z[:, 0])
    assert z1.shape == (cells.size,)
    with pytest.raises(ValueError):
        gi_star(X[:-1], kring_weights(cells))


def test_gi_star_finds_an_injected_cluster():
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 12), dtype=np.uint64)
    rng = np.random.default_rng(5)
    X = rng.poisson(1.0, size=(cells.size, 3)).astype(float)
    hot = np.isin(cells, np.array(h3i.grid_disk(PATCH_CENTRE, 1), dtype=np.uint64))
    X[hot, 2] += 6
    z, p = gi_star(X, kring_weights(cells))
    i = int(np.flatnonzero(cells == PATCH_CENTRE)[0])
    assert z[i, 2] > 5 and p[i, 2] < 1e-6
    assert abs(z[i, 0]) < 3


# --------------------------------------------------------------------------------------------------
# Emerging hot spots: one constructed series per class (10 slices, so "≥ 90 %" means ≥ 9)

S, N = 4.0, 0.3  # z of a significant bin / of a non-significant one
SIG, NOT = 1e-6, 0.7


def _series(pattern: str, rising: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """'+' hot, '-' cold, '.' not significant; rising/falling/None sets the z trend of significant bins."""
    n = len(pattern)
    wiggle = np.where(np.arange(n) % 2 == 0, 0.2, -0.2)  # no monotone trend
    base = {None: S + wiggle, True: np.linspace(3.0, 8.0, n), False: np.linspace(8.0, 3.0, n)}[rising]
    z = np.array([{"+": b, "-": -b, ".": N * (1 if i % 2 else -1)}[c] for i, (c, b) in enumerate(zip(pattern, base,
                  strict=True))])
    p = np.array([SIG if c in "+-" else NOT for c in pattern])
    return z, p


def _neg(zp):
    z, p = zp
    return -z, p


CASES = {
    "new_hot": _series("........." + "+"),
    "consecutive_hot": _series("......." + "+++"),
    "intensifying_hot": _series("++++++++++", rising=True),
    "persistent_hot": _series("++++++++++"),
    "diminishing_hot": _series("++++++++++", rising=False),
    "sporadic_hot": _series("..+..+...+"),
    "oscillating_hot": _series(".-..+....+"),
    "historical_hot": _series("+++++++++."),
    "new_cold": _series("........." + "-"),
    "consecutive_cold": _series("......" + "----"),
    "intensifying_cold": _neg(_series("++++++++++", rising=True)),  # z falls: colder and colder
    "persistent_cold": _series("----------"),
    "diminishing_cold": _neg(_series("++++++++++", rising=False)),  # z rises towards 0
    "sporadic_cold": _series("-...-..-.-"),
    "oscillating_cold": _series("+...+.+..-"),
    "historical_cold": _series("---------."),
    "no_pattern": _series("...++....."),
}


def test_every_class_has_a_constructed_example():
    assert set(CASES) == set(EHSA_CLASSES)
    z = np.vstack([c[0] for c in CASES.values()])
    p = np.vstack([c[1] for c in CASES.values()])
    got = emerging_hotspots(z, p, alpha=0.05, fdr="none")
    assert dict(zip(CASES, got, strict=True)) == {k: k for k in CASES}


def test_classes_survive_per_slice_fdr():
    # the same rows embedded among 300 quiet cells: per-slice BH keeps p = 1e-6 significant
    z = np.vstack([c[0] for c in CASES.values()])
    p = np.vstack([c[1] for c in CASES.values()])
    rng = np.random.default_rng(0)
    quiet_z = rng.normal(0, 0.5, size=(300, 10))
    quiet_p = 2 * stats.norm.sf(np.abs(quiet_z))
    got = emerging_hotspots(np.vstack([z, quiet_z]), np.vstack([p, quiet_p]), alpha=0.05)
    assert list(got[: len(CASES)]) == list(CASES)
    assert (got[len(CASES):] == "no_pattern").mean() > 0.95


def test_ambiguities_resolved_as_documented():
    rows = {
        "oscillating_hot": _series("-........+"),  # cold before, hot only at the end: not "new"
        "historical_cold": _series("---------+"),  # ≥ 90 % cold wins over "oscillating hot"
        "historical_hot": _series("++++++++++")[0] * np.r_[np.ones(9), -1.0],  # final cold, 90 % hot
        "no_pattern": _series("..+.+.+..."),  # on/off hot but not in the final slice
    }
    z = np.vstack([rows["oscillating_hot"][0], rows["historical_cold"][0], rows["historical_hot"],
                   rows["no_pattern"][0]])
    p = np.vstack([rows["oscillating_hot"][1], rows["historical_cold"][1], np.full(10, SIG),
                   rows["no_pattern"][1]])
    got = emerging_hotspots(z, p, fdr="none")
    assert list(got) == ["oscillating_hot", "historical_cold", "historical_hot", "no_pattern"]


def test_labels():
    assert set(EHSA_LABELS_EN) == set(EHSA_LABELS_ZH) == set(EHSA_CLASSES)
    for code, zh in {
        "new_hot": "新热点", "consecutive_hot": "连续热点", "intensifying_hot": "加剧热点",
        "persistent_hot": "持续热点", "diminishing_hot": "减弱热点", "sporadic_hot": "零星热点",
        "oscillating_hot": "振荡热点", "historical_hot": "历史热点", "new_cold": "新冷点",
        "persistent_cold": "持续冷点",
    }.items():
        assert EHSA_LABELS_ZH[code] == zh


# --------------------------------------------------------------------------------------------------


def test_hotspot_table_long_frame():
    cells = np.array(h3i.grid_disk(PATCH_CENTRE, 8), dtype=np.uint64)
    core = set(h3i.grid_disk(PATCH_CENTRE, 1))
    rng = np.random.default_rng(7)
    rows = []
    for w in range(12):
        lam = rng.gamma(2.0, 0.5, size=cells.size)
        counts = rng.poisson(lam)
        for c, n in zip(cells.tolist(), counts.tolist(), strict=True):
            n += (3 * w) if c in core else 0  # a cluster that grows every week
            if n:  # a long frame carries no zero rows
                rows.append((c, pd.Timestamp("2025-01-06") + pd.Timedelta(weeks=w), n))
    frame = pd.DataFrame(rows, columns=["h3", "week", "n"])
    frame = pd.concat([frame, frame.iloc[:5].assign(n=1)])  # duplicate rows are summed
    tab = hotspot_table(frame, "h3", "week", "n", k=1, cells=cells)
    assert len(tab) == cells.size and tab.index.name == "cell"
    assert tab.attrs["latest"] == pd.Timestamp("2025-01-06") + pd.Timedelta(weeks=11)
    centre = tab.loc[PATCH_CENTRE]
    assert centre["significant"] and centre["spot"] == "hot"
    assert centre["pattern"] in {"intensifying_hot", "consecutive_hot", "new_hot"}
    assert centre["trend"] == "up" and centre["pattern_zh"] == EHSA_LABELS_ZH[centre["pattern"]]
    far = tab.drop(index=[c for c in h3i.grid_disk(PATCH_CENTRE, 3) if c in tab.index])
    assert (far["pattern"] == "no_pattern").mean() > 0.8
    assert {"z", "p", "significant", "pattern_en", "mk_tau", "mk_p", "n_hot"} <= set(tab.columns)


def test_portland_downtown_is_a_hotspot(shared_data):
    """Weekly NIJ Portland calls at H3 res 8: downtown cells are significant Gi* hot spots (FDR 0.05)."""
    df = pd.read_parquet(shared_data / "portland_nij_cfs_2016_aug_sep_nov.parquet",
                         columns=["lon", "lat", "occ_date"]).dropna()
    cells = np.fromiter((h3i.latlng_to_cell(a, b, 8) for a, b in zip(df["lat"], df["lon"], strict=True)),
                        dtype=np.uint64, count=len(df))
    weeks = df["occ_date"].dt.to_period("W-SUN").dt.start_time
    long = pd.DataFrame({"cell": cells, "week": weeks}).groupby(["cell", "week"]).size().rename("n").reset_index()
    tab = hotspot_table(long, "cell", "week", "n", k=1, alpha=0.05)
    assert tab.attrs["n_slices"] >= 13
    downtown = [c for c in h3i.grid_disk(h3i.latlng_to_cell(45.5189, -122.6795, 8), 1) if c in tab.index]
    hot_downtown = tab.loc[downtown].query("significant and spot == 'hot'")
    assert len(hot_downtown) >= 4
    assert set(hot_downtown["pattern"]) <= {"persistent_hot", "intensifying_hot", "diminishing_hot",
                                            "sporadic_hot", "consecutive_hot", "new_hot"}
    # the strongest cell citywide is downtown (within 2 km of Pioneer Courthouse Square)
    top = int(tab["z"].idxmax())
    lat, lng = h3i.cell_to_latlng(top)
    assert h3i.great_circle_distance((lat, lng), (45.5189, -122.6795), unit="km") < 2.0
    assert tab["significant"].mean() < 0.2  # a level map, but not everything is hot
