"""BH-FDR and the Mann–Kendall trend test."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from models.stats import fdr_bh, mann_kendall, norm_two_sided_p

# Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the step-up rule rejects the 4 smallest
# (p_(4) = 0.0095 <= 4/15·0.05 = 0.0133; p_(5) = 0.0201 > 0.0167, and no later p_(k) <= k/15·0.05).
BH1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
          0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]


def test_fdr_bh_paper_example():
    p = np.array(BH1995)
    rej = fdr_bh(p, 0.05)
    np.testing.assert_array_equal(rej, np.arange(15) < 4)
    perm = np.random.default_rng(0).permutation(15)  # order of input does not matter
    np.testing.assert_array_equal(fdr_bh(p[perm], 0.05), (np.arange(15) < 4)[perm])


def test_fdr_bh_step_up_and_edges():
    # rank 1 fails its own bound (0.02 > 0.0125) but rank 2 passes (0.024 <= 0.025): both rejected
    np.testing.assert_array_equal(fdr_bh([0.02, 0.024, 0.9, 0.9]), [True, True, False, False])
    np.testing.assert_array_equal(fdr_bh([0.02, 0.03, 0.04, 0.9]), [False] * 4)
    # ties at the cut-off are all rejected
    np.testing.assert_array_equal(fdr_bh([0.01, 0.01, 0.01, 0.5], 0.05), [True, True, True, False])
    assert fdr_bh([], 0.05).shape == (0,)
    assert bool(fdr_bh(0.01)) and not bool(fdr_bh(0.2))
    with pytest.raises(ValueError):
        fdr_bh([0.1], alpha=0)


def test_fdr_bh_nan_safe_and_shape():
    p = np.array([[0.001, np.nan], [0.04, 0.03]])
    # NaN is not a test: m = 3, bounds 0.0167/0.0333/0.05 -> all three finite p rejected
    np.testing.assert_array_equal(fdr_bh(p, 0.05), [[True, False], [True, True]])
    assert fdr_bh(np.full((2, 3), np.nan)).sum() == 0


def test_fdr_bh_axis_is_per_family():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=(200, 6)) ** 3
    by_col = fdr_bh(p, 0.1, axis=0)
    for j in range(6):
        np.testing.assert_array_equal(by_col[:, j], fdr_bh(p[:, j], 0.1))
    by_row = fdr_bh(p, 0.1, axis=1)
    for i in range(0, 200, 37):
        np.testing.assert_array_equal(by_row[i], fdr_bh(p[i], 0.1))
    assert by_col.shape == p.shape


def test_fdr_bh_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(2)
    for alpha in (0.01, 0.05, 0.1):
        p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 1e-3, size=100)])
        ref, *_ = multitest.multipletests(p, alpha=alpha, method="fdr_bh")
        np.testing.assert_array_equal(fdr_bh(p, alpha), ref)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.sampled_from([0.01, 0.05, 0.2]))
def test_fdr_bh_properties(ps, alpha):
    p = np.array(ps)
    rej = fdr_bh(p, alpha)
    if rej.any():  # rejections are exactly the p-values up to a cut-off that satisfies the BH bound
        cut = p[rej].max()
        assert np.all(rej == (p <= cut))
        assert cut <= rej.sum() / p.size * alpha + 1e-15
    assert rej.sum() >= (p <= alpha / p.size).sum()  # BH is never stricter than Bonferroni


def test_norm_two_sided_p():
    z = np.array([0.0, 1.959963984540054, -1.959963984540054, np.nan, 40.0])
    np.testing.assert_allclose(norm_two_sided_p(z)[:3], [1.0, 0.05, 0.05], rtol=1e-12)
    assert np.isnan(norm_two_sided_p(z)[3]) and norm_two_sided_p(z)[4] == 0.0


# --------------------------------------------------------------------------------------------------


def test_mann_kendall_hand_worked():
    # y = 1..5: S = 10, Var(S) = 5·4·15/18 = 16.667, z = (10 − 1)/4.082 = 2.2045, p = 0.0275
    tau, z, p = mann_kendall(np.arange(1.0, 6.0))
    assert tau[0] == 1.0
    assert z[0] == pytest.approx(9 / np.sqrt(5 * 4 * 15 / 18))
    assert p[0] == pytest.approx(0.02749, abs=1e-4)
    # with ties: y = [1, 2, 2, 3, 1, 4]; row sums of sign(y_j − y_i), j > i: 4 + 1 + 1 + 0 + 1 -> S = 7
    y = np.array([1.0, 2.0, 2.0, 3.0, 1.0, 4.0])
    s = sum(np.sign(y[j] - y[i]) for i in range(6) for j in range(i + 1, 6))
    assert s == 7
    # tie groups {1,1} and {2,2}: Σ t(t−1)(2t+5) = 2·18 = 36; Var = (6·5·17 − 36)/18 = 26.333
    var = (6 * 5 * 17 - 36) / 18
    tau, z, p = mann_kendall(y)
    assert z[0] == pytest.approx((7 - 1) / np.sqrt(var))
    assert p[0] == pytest.approx(2 * stats.norm.sf((7 - 1) / np.sqrt(var)))
    # tau-b: S / sqrt(n0 (n0 − n1)), n0 = 15, n1 = 2 tie pairs
    assert tau[0] == pytest.approx(7 / np.sqrt(15 * 13))


def test_mann_kendall_matches_scipy_kendalltau():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(50, 26)) + np.linspace(0, 1, 26) * rng.normal(size=(50, 1))
    tau, z, p = mann_kendall(y)
    t = np.arange(26)
    for i in range(50):
        ref = stats.kendalltau(t, y[i], method="asymptotic")
        assert tau[i] == pytest.approx(ref.statistic, abs=1e-12)
        # scipy's asymptotic z is S / sd(S); ours subtracts sign(S) (continuity correction)
        s = tau[i] * 26 * 25 / 2
        assert z[i] == pytest.approx((s - np.sign(s)) / np.sqrt(26 * 25 * 57 / 18), abs=1e-9)
        assert p[i] >= ref.pvalue - 1e-12
    # with ties (counts), tau equals scipy's tau-b
    yc = rng.poisson(2, size=(40, 20)).astype(float)
    tau_c, _, _ = mann_kendall(yc)
    for i in range(40):
        assert tau_c[i] == pytest.approx(stats.kendalltau(np.arange(20), yc[i]).statistic, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=3, max_size=25))
def test_mann_kendall_variance_against_bruteforce(vals):
    y = np.array(vals, dtype=float)
    n = y.size
    s = sum(np.sign(y[j] - y[i]) for i in range(n) for j in range(i + 1, n))
    _, counts = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(counts * (counts - 1) * (2 * counts + 5))) / 18
    _, z, p = mann_kendall(y)
    if var > 0:
        assert z[0] == pytest.approx((s - np.sign(s)) / np.sqrt(var), abs=1e-12)
    else:
        assert z[0] == 0 and p[0] == 1


def test_mann_kendall_degenerate_rows():
    y = np.array([[3.0] * 8, [1, 2, np.nan, 4, 5, 6, 7, 8], list(range(8))])
    tau, z, p = mann_kendall(y)
    assert (tau[0], z[0], p[0]) == (0.0, 0.0, 1.0)
    assert np.isnan(tau[1]) and np.isnan(p[1])
    assert tau[2] == 1.0 and p[2] < 0.01
    assert np.isnan(mann_kendall(np.ones((2, 2)))[0]).all()  # n < 3


def _bh_reference(p, alpha):
    """Textbook BH on one family, NaNs dropped."""
    p = np.asarray(p, dtype=float)
    out = np.zeros(p.shape, dtype=bool)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    passed = [k for k in range(1, m + 1) if p[order[k - 1]] <= k / m * alpha]
    if passed:
        out[idx] = p[idx] <= p[order[max(passed) - 1]]
    return out


def test_fdr_bh_matches_reference_with_ties_and_nans():
    rng = np.random.default_rng(6)
    for trial in range(20):
        p = np.round(rng.uniform(size=(60, 4)) ** rng.uniform(1, 6), 3)  # many ties
        p[rng.random(p.shape) < 0.1] = np.nan
        alpha = [0.01, 0.05, 0.1, 0.25][trial % 4]
        got = fdr_bh(p, alpha, axis=0)
        for j in range(4):
            np.testing.assert_array_equal(got[:, j], _bh_reference(p[:, j], alpha))
        np.testing.assert_array_equal(fdr_bh(p, alpha), _bh_reference(p.ravel(), alpha).reshape(p.shape))
