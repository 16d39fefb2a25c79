import numpy as np
import pandas as pd

from models.outliers import SIGNAL, CellProfileOutliers


def _events(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    days = pd.date_range("2026-07-01", "2026-09-30")
    for cell in range(60):
        for _ in range(80):
            rows.append((cell, rng.choice(days), rng.choice(["MD02", "CG", "MD9902", "AQ"]), rng.random() < 0.9))
    # cell 999: an unusual profile — wage arrears only, rising fast, mostly unresolved
    for _ in range(60):
        rows.append((999, rng.choice(days[-20:]), "MD1001", rng.random() < 0.2))
    return pd.DataFrame(rows, columns=["cell", "day", "category_code", "closed"])


def test_the_odd_cell_ranks_first_and_is_labelled_secondary():
    out = CellProfileOutliers(random_state=1).fit_score(_events(), as_of=pd.Timestamp("2026-09-30"))
    assert out.index[0] == 999
    assert out["outlier_score"].between(0, 1).all()
    assert (out["signal"] == SIGNAL).all()
    assert out.loc[999, "unresolved_share"] > 0.5 and out.loc[999, "growth"] > 0


def test_deterministic_with_random_state():
    a = CellProfileOutliers(random_state=3).fit_score(_events(1), as_of=pd.Timestamp("2026-09-30"))
    b = CellProfileOutliers(random_state=3).fit_score(_events(1), as_of=pd.Timestamp("2026-09-30"))
    pd.testing.assert_frame_equal(a, b)


def test_sparse_cells_are_left_out():
    ev = _events()
    ev = pd.concat([ev, pd.DataFrame([(5000, pd.Timestamp("2026-09-29"), "CG", True)], columns=ev.columns)])
    out = CellProfileOutliers().fit_score(ev, as_of=pd.Timestamp("2026-09-30"))
    assert 5000 not in out.index


def test_category_mix_equals_a_normalised_crosstab():
    ev = _events(2)
    model = CellProfileOutliers(min_events=0, prior_events=0)  # the raw mix (the default shrinks it)
    prof = model.profile(ev, as_of=pd.Timestamp("2026-10-01"))  # the build's time: the midnight after the last day
    day = pd.to_datetime(ev["day"])
    window = ev[day >= pd.Timestamp("2026-10-01") - pd.Timedelta(weeks=16)]
    top = window["category_code"].str.slice(0, 2).where(~window["category_code"].str.startswith("MD"),
                                                        window["category_code"].str.slice(0, 4))
    want = pd.crosstab(window["cell"], top, normalize="index").add_prefix("share_")
    got = prof[[c for c in prof.columns if c.startswith("share_")]]
    np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy())
    assert list(got.columns) == list(want.columns)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_the_four_recent_weeks_hold_28_days_when_built_at_midnight():
    """A cell with one event every day has no growth: its last 4 weeks (28 days up to the day before a midnight
    build) and its 12 weeks before hold the same daily rate. Counted from the build's own day they held 27."""
    days = pd.date_range("2026-06-10", "2026-09-30")
    ev = pd.DataFrame({"cell": 1, "day": days, "category_code": "CG", "closed": True})
    for as_of in (pd.Timestamp("2026-10-01", tz="Asia/Shanghai"), pd.Timestamp("2026-10-01")):
        prof = CellProfileOutliers(min_events=0).profile(ev, as_of)
        assert prof.loc[1, "n"] == 16 * 7 and prof.loc[1, "growth"] == 0


def test_sparse_cells_do_not_fill_the_top_for_their_noise():
    """300 cells of 5–120 events, each mix drawn around the city's: a cell of 6 events has an extreme mix by chance
    alone. Unshrunk, the ten "most unlike" cells are such (median 6 events); each mix shrunk toward the city's as if
    it had 10 events more, they are cells with enough events to mean something."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-06-10", "2026-09-30")
    cats, city = np.array(["MD02", "CG", "MD9902", "AQ", "HJ"]), np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    rows = []
    for cell in range(300):
        mix = rng.dirichlet(city * 60)
        rows += [(cell, rng.choice(days), rng.choice(cats, p=mix), rng.random() < 0.85)
                 for _ in range(int(rng.integers(5, 120)))]
    ev = pd.DataFrame(rows, columns=["cell", "day", "category_code", "closed"])
    raw = CellProfileOutliers(random_state=1, prior_events=0).fit_score(ev, pd.Timestamp("2026-10-01"))
    shrunk = CellProfileOutliers(random_state=1).fit_score(ev, pd.Timestamp("2026-10-01"))
    assert raw.head(10)["n"].median() < 10 < 30 < shrunk.head(10)["n"].median()
