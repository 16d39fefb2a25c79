"""Repeat places (一地多报) and the Knox near-repeat test."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from models.repeat_places import (
    EARTH_RADIUS_M,
    calibrate_near_repeat,
    group_places,
    knox_test,
    repeat_places,
)

LAT0, LNG0 = 22.78, 115.37  # 汕尾市城区


def offset(lat, lng, east_m, north_m):
    """Point ``east_m`` / ``north_m`` metres from (lat, lng) (local tangent plane; fine below a few km)."""
    lat = np.asarray(lat, dtype=float)
    dlat = np.degrees(np.asarray(north_m, dtype=float) / EARTH_RADIUS_M)
    dlng = np.degrees(np.asarray(east_m, dtype=float) / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat + dlat, np.asarray(lng, dtype=float) + dlng


def haversine_m(lat1, lng1, lat2, lng2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def _events():
    rng = np.random.default_rng(0)
    end = pd.Timestamp("2025-06-30 18:00", tz="Asia/Shanghai")
    rows = []

    def add(eid, lat, lng, days_ago, cat, key=None):
        rows.append((eid, lng, lat, end - pd.Timedelta(days=days_ago), cat, key))

    # A: 5 incidents within 15 m of a point, in the last 60 days (+ one 200 days ago, outside the window)
    for i, (e, n) in enumerate([(0, 0), (10, 3), (-8, 6), (4, -12), (-3, -5)]):
        add(f"A{i}", *offset(LAT0, LNG0, e, n), days_ago=10 * i + 1, cat="MD02" if i < 3 else "MD15")
    add("A_old", *offset(LAT0, LNG0, 2, 2), days_ago=200, cat="MD02")
    # B: 3 incidents within 10 m, 1 km east
    for i in range(3):
        add(f"B{i}", *offset(LAT0, LNG0, 1000 + 5 * i, -4 * i), days_ago=5 + i, cat="MD10")
    # C: only 2 incidents (below min_count), 2 km north
    for i in range(2):
        add(f"C{i}", *offset(LAT0, LNG0, 0, 2000 + 3 * i), days_ago=3, cat="MD15")
    # D: one address, geocodes scattered 300 m apart (merged by the address key only)
    for i in range(3):
        add(f"D{i}", *offset(LAT0, LNG0, -3000 + 300 * i, 500), days_ago=20 + i, cat="MD04", key="建设路12号")
    # scattered singletons, all > 400 m from everything else
    for i in range(12):
        add(f"S{i}", *offset(LAT0, LNG0, 5000 + 450 * i, -3000 + rng.uniform(-50, 50)), days_ago=rng.uniform(0, 80),
            cat="CG")
    return pd.DataFrame(rows, columns=["event_id", "lng", "lat", "occurred_at", "category_code", "address_key"])


def test_repeat_places_exact_groups():
    ev = _events()
    out = repeat_places(ev, min_count=3, window_days=90, radius_m=50)
    groups = {frozenset(ids) for ids in out["event_ids"]}
    assert groups == {
        frozenset({"A0", "A1", "A2", "A3", "A4"}),
        frozenset({"B0", "B1", "B2"}),
        frozenset({"D0", "D1", "D2"}),
    }
    a = out.iloc[0]  # most incidents first
    assert a["n_events"] == 5 and a["place_id"] == 0
    assert a["categories"] == {"MD02": 3, "MD15": 2} and a["top_category"] == "MD02"
    assert a["first_at"] == ev.loc[ev.event_id == "A4", "occurred_at"].item()
    assert a["last_at"] == ev.loc[ev.event_id == "A0", "occurred_at"].item()
    assert haversine_m(a["lat"], a["lng"], LAT0, LNG0) < 10 and a["spread_m"] < 20
    d = out[out["address_keys"].map(lambda k: k == ["建设路12号"])]
    assert len(d) == 1 and d["spread_m"].item() > 250
    # nothing that could identify a person comes back
    assert not {"party", "caller", "name", "phone"} & {c.lower() for c in out.columns}


def test_repeat_places_window_and_threshold():
    ev = _events()
    # the 200-day-old event joins A when the window reaches back far enough
    out = repeat_places(ev, min_count=3, window_days=365, radius_m=50)
    assert out.iloc[0]["n_events"] == 6
    # a window ending 30 days ago keeps only A's older incidents (A3, A4 at 31 and 41 days ago... + D)
    as_of = ev["occurred_at"].max() - pd.Timedelta(days=30)
    out = repeat_places(ev, min_count=2, window_days=60, radius_m=50, as_of=as_of)
    groups = {frozenset(ids) for ids in out["event_ids"]}
    assert frozenset({"A3", "A4"}) in groups
    # min_count=2 now admits C
    out = repeat_places(ev, min_count=2, window_days=90, radius_m=50)
    assert frozenset({"C0", "C1"}) in {frozenset(ids) for ids in out["event_ids"]}
    # without the address column D falls apart into singletons
    out = repeat_places(ev.drop(columns="address_key"), min_count=3, window_days=90)
    assert len(out) == 2
    empty = repeat_places(ev, min_count=50)
    assert empty.empty and "event_ids" in empty.columns


def test_group_places_seed_vs_single_linkage():
    lat, lng = offset(LAT0, LNG0, np.arange(5) * 40.0, np.zeros(5))  # a street: 5 points 40 m apart
    single = group_places(lng, lat, radius_m=50, linkage="single")
    assert len(set(single)) == 1  # single linkage chains the whole street
    seed = group_places(lng, lat, radius_m=50, linkage="seed")
    assert [set(np.flatnonzero(seed == g)) for g in np.unique(seed)] == [{0, 1, 2}, {3, 4}]
    # missing coordinates: grouped by address key only, else alone
    lat2 = np.r_[lat, np.nan, np.nan]
    lng2 = np.r_[lng, np.nan, np.nan]
    keys = np.array([None, None, None, None, "k", "k", None], dtype=object)
    lab = group_places(lng2, lat2, keys, radius_m=50)
    assert lab[5] == lab[4] and lab[6] not in set(lab[:6])
    with pytest.raises(ValueError):
        group_places(lng, lat, linkage="complete")


# --------------------------------------------------------------------------------------------------
# Knox


def _uniform(n, rng, days=365.0, half_km=5.0):
    lat, lng = offset(LAT0, LNG0, rng.uniform(-half_km, half_km, n) * 1000, rng.uniform(-half_km, half_km, n) * 1000)
    return lng, lat, rng.uniform(0, days, n)


def test_knox_observed_matches_bruteforce():
    rng = np.random.default_rng(1)
    lng, lat, t = _uniform(400, rng, days=60, half_km=1.0)
    s_bands, t_bands = (100, 250, 500), (3, 7, 14)
    res = knox_test(lng, lat, t, s_bands, t_bands, n_perm=19, seed=3)
    iu, ju = np.triu_indices(len(t), 1)
    d = haversine_m(lat[iu], lng[iu], lat[ju], lng[ju])
    dt = np.abs(t[iu] - t[ju])
    s_e, t_e = np.r_[0, s_bands], np.r_[0, t_bands]
    ref = np.zeros((3, 3), dtype=int)
    for a in range(3):
        for b in range(3):
            in_s = (d <= s_e[a + 1]) & ((d > s_e[a]) if a else True)
            in_t = (dt <= t_e[b + 1]) & ((dt > t_e[b]) if b else True)
            ref[a, b] = np.sum(in_s & in_t)
    np.testing.assert_array_equal(res.observed, ref)
    assert np.all((res.p_value > 0) & (res.p_value <= 1))
    np.testing.assert_allclose(res.ratio, res.observed / res.expected)
    frame = res.to_frame()
    assert len(frame) == 9 and frame["observed"].sum() == ref.sum()
    # datetime input gives the same table as day numbers
    ts = pd.Timestamp("2025-01-01") + pd.to_timedelta(t, unit="D")
    res2 = knox_test(lng, lat, ts.to_numpy(), s_bands, t_bands, n_perm=19, seed=3)
    np.testing.assert_array_equal(res2.observed, res.observed)


def test_knox_finds_injected_near_repeats():
    rng = np.random.default_rng(2)
    lng, lat, t = _uniform(1500, rng)
    src = rng.choice(1500, size=300, replace=False)  # each spawns a follow-up within 30 m and 5 days
    ang, r = rng.uniform(0, 2 * np.pi, 300), rng.uniform(0, 30, 300)
    f_lat, f_lng = offset(lat[src], lng[src], r * np.cos(ang), r * np.sin(ang))
    lng, lat = np.r_[lng, f_lng], np.r_[lat, f_lat]
    t = np.r_[t, t[src] + rng.uniform(0, 5, 300)]
    res = knox_test(lng, lat, t, (100, 200, 400), (7, 14, 28), n_perm=99, seed=4)
    assert res.ratio[0, 0] > 3 and res.p_value[0, 0] == 0.01
    cal = calibrate_near_repeat(knox=res)
    assert (cal.radius_m, cal.window_days) == (100.0, 7.0)
    # same thing through the one-call form
    cal2 = calibrate_near_repeat(lng, lat, t, (100, 200, 400), (7, 14, 28), n_perm=99, seed=4)
    assert (cal2.radius_m, cal2.window_days) == (100.0, 7.0)


def test_knox_uniform_process_shows_no_interaction():
    significant = 0
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        lng, lat, t = _uniform(2000, rng)
        res = knox_test(lng, lat, t, (100, 200, 400, 800), (7, 14, 28, 56), n_perm=99, seed=seed)
        significant += int((res.p_value <= 0.05).sum())
        # observed within ~5 Poisson s.d. of expected in every band (pair counts are a bit overdispersed)
        assert np.all(np.abs(res.observed - res.expected) < 5 * np.sqrt(res.expected))
        assert calibrate_near_repeat(knox=res).radius_m is None
    assert significant <= 4  # 48 band tests at 5 %: about 2.4 expected by chance


def test_knox_5k_events_in_a_few_seconds():
    rng = np.random.default_rng(9)
    lng, lat, t = _uniform(5000, rng)
    t0 = time.perf_counter()
    knox_test(lng, lat, t, (100, 200, 400, 800), (7, 14, 28, 56), n_perm=99, seed=0)
    assert time.perf_counter() - t0 < 10.0


def test_knox_band_validation():
    with pytest.raises(ValueError):
        knox_test([0, 0], [0, 0], [0, 1], space_bands_m=(200, 100))
    with pytest.raises(ValueError):
        calibrate_near_repeat()


def test_per_place_counts_and_lists_equal_a_plain_groupby():
    """The vectorised per-place category counts and event-id lists equal pandas' per-group
    ``value_counts`` / ``agg(list)`` — same keys, same counts, same order (ties: first appearance)."""
    from models.repeat_places import _counts_per_group, _lists_per_group

    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"place": rng.integers(0, 300, n) * 7 + 1,
                          "cat": pd.array(rng.choice(["MD02", "MD15", "CG", "AQ", None], n), dtype="string"),
                          "id": [f"E{i}" for i in range(n)]})
    cats = frame["cat"].fillna("未知")
    want = {place: dict(s.value_counts()) for place, s in cats.groupby(frame["place"], sort=False)}
    got = _counts_per_group(frame["place"].to_numpy(), cats.to_numpy())
    assert list(got.index) == list(want)
    for place, d in want.items():
        assert list(got[place].items()) == list(d.items())  # same order, not only the same counts
        assert all(type(v) is int for v in got[place].values())
    want_ids = frame.groupby("place", sort=False)["id"].agg(list)
    got_ids = _lists_per_group(frame["place"].to_numpy(), frame["id"].to_numpy())
    assert got_ids.reindex(want_ids.index).tolist() == want_ids.tolist()
