"""The shipped real-data profiles load their datasets from ../shared/data, with counts that reconcile.

Each test sets up a deployment purely by configuration in a temporary folder, the way a customer
would: boundary files (a GeoPackage plus ``areas.toml``), settings from environment variables only
(home, areas dir, county code/name, time zone), ``load_geography``, then the dataset converted from
the shared Parquet copy back to the form the source publishes it in (NIJ CSV, the Milwaukee scrape's
CSV, the SLO call-log CSV, Socrata JSON lines for NYC 311) and ``ingest`` with the shipped profile.

Stand-in geography (all of it labelled here, none of it is a real Chinese 区划):

* Portland: the 60 NIJ police districts (EPSG:2913 feet, written as such) are the villages AND the
  grids (one grid per district), the three precincts (NO/CE/EA, dissolved) the towns, their union
  the county. Codes are synthetic but nested: county 410051, town +3 digits, village +3, grid +001.
* Milwaukee and NYC: a partition of a lon/lat box into rectangles (towns -> villages -> grids).
  Milwaukee's box is the city box from MANIFEST.md (42.8–43.2 N, 88.1–87.8 W); NYC's is the data's
  own extent, padded.
* San Luis Obispo: no beat polygons are public. Thirteen synthetic strips named PN1…PN13 (the beat
  names used in the log) are the grids, one per village, under one town.

The expected quarantine reasons are recomputed here from the Parquet file with plain pandas and
shapely, in the order the stager applies them (the first reason wins), and compared exactly.
"""
from __future__ import annotations

import json

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from onemap.settings import load_settings
from pipelines.areas_load import load_geography
from pipelines.ingest import ingest
from pipelines.mappings import CategoryMap
from pipelines.profiles import load_profile

# ------------------------------------------------------------------------------------------ helpers

def _settings(tmp_path, folder, county_code: str, county_name: str, timezone: str):
    environ = {
        "ONEMAP_HOME": str(tmp_path / "home"),
        "ONEMAP_GEO__AREAS_DIR": str(folder),
        "ONEMAP_GEO__COUNTY_CODE": county_code,
        "ONEMAP_GEO__COUNTY_NAME": county_name,
        "ONEMAP_TIME__TIMEZONE": timezone,
    }
    return load_settings(environ=environ, local_file=tmp_path / "no-local-config.toml")


def _write_deployment(folder, layers: dict[str, gpd.GeoDataFrame], vintage: str, note: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, gdf in layers.items():
        gdf.to_file(folder / "boundaries.gpkg", layer=name, driver="GPKG")
    (folder / "areas.toml").write_text(f"# {note}\nvintage = \"{vintage}\"\n", encoding="utf-8")


def _box_partition(county_code: str, bounds: tuple[float, float, float, float], towns: tuple[int, int],
                   villages: tuple[int, int], grids: tuple[int, int]) -> dict[str, gpd.GeoDataFrame]:
    """County = the box; towns, villages and grids = nested regular rectangles, codes nested by prefix."""
    def split(box, nx, ny):
        x0, y0, x1, y1 = box
        xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
        return [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(ny) for i in range(nx)]

    rows = {"towns": [], "villages": [], "grids": []}
    for t, tbox in enumerate(split(bounds, *towns), start=1):
        tcode = f"{county_code}{t:03d}"
        rows["towns"].append({"code": tcode, "name": f"示例{t:02d}街道", "geometry": shapely.box(*tbox)})
        for v, vbox in enumerate(split(tbox, *villages), start=1):
            vcode = f"{tcode}{v:03d}"
            rows["villages"].append({"code": vcode, "name": f"示例{t:02d}第{v}社区", "geometry": shapely.box(*vbox)})
            for g, gbox in enumerate(split(vbox, *grids), start=1):
                rows["grids"].append({"code": f"{vcode}{g:03d}", "name": f"示例{t:02d}第{v}社区第{g}网格",
                                      "geometry": shapely.box(*gbox)})
    out = {k: gpd.GeoDataFrame(v, geometry="geometry", crs="EPSG:4326") for k, v in rows.items()}
    out = {"county": gpd.GeoDataFrame({"code": [county_code], "name": ["示例县"]},
                                      geometry=[shapely.box(*bounds)], crs="EPSG:4326"), **out}
    return out


def _first_reason(n: int, rules: list[tuple[str, np.ndarray]]) -> dict[str, int]:
    """Counts of the first matching reason per row, in the order given (the stager's order)."""
    reason = np.full(n, None, dtype=object)
    for name, mask in rules:
        reason[np.asarray(mask, dtype=bool) & (reason == None)] = name  # noqa: E711
    return pd.Series(reason[reason != None]).value_counts().to_dict()  # noqa: E711


def _warehouse(settings):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        events = con.execute("SELECT event_id, source, source_record_id, source_row, status, category_code, "
                             "category_raw_code, reported_at, closed_at, geocode_method, geocode_precision, "
                             "grid_code, village_code, town_code, county_code, lng, lat, h3_cell, flags, ext "
                             "FROM core.events").df()
        rejects = con.execute("SELECT source_row, field, reason, detail FROM staging.rejects").df()
    finally:
        con.close()
    return events, rejects


def _check_accounting(summary, n_rows: int, settings, expected_reasons: dict[str, int]):
    """rows_read = parquet rows; the summary reconciles; events + rejects cover every row exactly once."""
    assert summary.rows_read == n_rows
    assert summary.reconciles, summary.line()
    assert summary.updated == 0 and summary.unchanged == 0  # a fresh warehouse
    assert summary.reasons == expected_reasons, summary.line()
    events, rejects = _warehouse(settings)
    assert len(events) == summary.inserted and len(rejects) == summary.quarantined
    loaded, rejected = set(events["source_row"]), set(rejects["source_row"])
    assert len(loaded) == len(events) and len(rejected) == len(rejects)  # one row, one outcome
    assert not loaded & rejected and loaded | rejected == set(range(1, n_rows + 1))
    assert rejects["reason"].notna().all() and rejects["detail"].notna().all()
    return events, rejects


def _check_unmapped(summary, profile_name: str, events, min_mapped_share: float):
    """Every unknown_category row has a code the profile deliberately leaves unmapped; listed in the summary."""
    profile = load_profile(profile_name)
    assert set(summary.unmapped or {}) <= set(profile.unmapped_codes), summary.unmapped
    assert sum((summary.unmapped or {}).values()) == (summary.reasons or {}).get("unknown_category", 0)
    if summary.unmapped:
        assert f"unmapped {profile_name} codes" in summary.line()
        top = max(summary.unmapped, key=summary.unmapped.get)
        assert top in summary.line()
    assert events["category_code"].notna().all()
    share = len(events) / summary.rows_read
    assert share >= min_mapped_share, f"only {share:.0%} of rows loaded with a category"


def _unknown(codes: pd.Series, system: str) -> np.ndarray:
    known = set(CategoryMap.load().table.query("source_system == @system")["source_code"])
    return (codes.notna() & ~codes.astype("string").str.strip().isin(known)).to_numpy()


# ------------------------------------------------------------------------------------------ Portland

@pytest.mark.slow
def test_portland_nij_calls_for_service(shared_data, tmp_path):
    cfs = pd.read_parquet(shared_data / "portland_nij_cfs_2016_aug_sep_nov.parquet")
    districts = gpd.read_parquet(shared_data / "portland_police_districts_nij.parquet")
    assert districts.crs.to_epsg() == 2913 and len(districts) == 60

    # geography in the districts' own CRS (state-plane feet): precincts -> towns, districts -> villages + grids
    county = "410051"
    districts = districts.assign(geometry=shapely.make_valid(districts.geometry.values))
    precincts = sorted(districts["PRECINCT"].unique())
    tcode = {p: f"{county}{i:03d}" for i, p in enumerate(precincts, start=1)}
    districts = districts.sort_values(["PRECINCT", "DISTRICT"]).reset_index(drop=True)
    districts["seq"] = districts.groupby("PRECINCT").cumcount() + 1
    vcode = [f"{tcode[p]}{s:03d}" for p, s in zip(districts["PRECINCT"], districts["seq"], strict=True)]
    crs = districts.crs
    towns = districts.dissolve("PRECINCT").reset_index()
    layers = {
        "county": gpd.GeoDataFrame({"code": [county], "name": ["Portland (NIJ districts)"]},
                                   geometry=[shapely.union_all(districts.geometry.values)], crs=crs),
        "towns": gpd.GeoDataFrame({"code": [tcode[p] for p in towns["PRECINCT"]],
                                   "name": [f"Precinct {p}" for p in towns["PRECINCT"]]}, geometry=towns.geometry.values,
                                  crs=crs),
        "villages": gpd.GeoDataFrame({"code": vcode, "name": [f"District {d}" for d in districts["DISTRICT"]]},
                                     geometry=districts.geometry.values, crs=crs),
        "grids": gpd.GeoDataFrame({"code": [v + "001" for v in vcode],
                                   "name": [f"District {d} grid" for d in districts["DISTRICT"]]},
                                  geometry=districts.geometry.values, crs=crs),
    }
    folder = tmp_path / "portland"
    _write_deployment(folder, layers, "nij2016", "Portland police districts (NIJ) as grids; synthetic codes")
    settings = _settings(tmp_path, folder, county, "Portland NIJ", "America/Los_Angeles")
    areas, _report = load_geography(settings, folder, None)
    assert len(areas.grids) == 60 and areas.vintage == "nij2016"

    # the NIJ CSV as published: its headers, m/d/yy dates, integer feet, padded codes
    assert (cfs["x_ft"] % 1 == 0).all() and (cfs["y_ft"] % 1 == 0).all()
    tract = cfs["census_tract"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    native = pd.DataFrame({
        "CATEGORY": cfs["category"].astype(str), "CALL GROUPS": cfs["call_group"].astype(str),
        "final_case_type": cfs["final_case_type"].astype(str).str.ljust(6),
        "CASE DESC": cfs["case_desc"].astype(str).str.ljust(50),
        "occ_date": [f"{d.month}/{d.day}/{d:%y}" for d in cfs["occ_date"]],
        "x_coordinate": cfs["x_ft"].astype("int64"), "y_coordinate": cfs["y_ft"].astype("int64"),
        "census_tract": tract,
    })
    path = tmp_path / "NIJ2016_AUG_SEP_NOV.csv"
    native.to_csv(path, index=False)

    [summary] = ingest(settings, "police", [path], profile_name="portland_nij", progress=False)
    print(summary.line())  # shown with -s, and on failure

    # expected reasons, from the parquet: unmapped code first, then points outside every district
    n = len(cfs)
    districts_union = shapely.union_all(districts.geometry.values)
    inside = shapely.contains_xy(districts_union, cfs["x_ft"].to_numpy(), cfs["y_ft"].to_numpy())
    near = shapely.dwithin(shapely.boundary(districts_union), shapely.points(cfs["x_ft"], cfs["y_ft"]), 0.1)
    unknown = _unknown(cfs["final_case_type"], "portland_nij")
    expected = _first_reason(n, [("unknown_category", unknown), ("outside_jurisdiction", ~inside)])
    reasons = dict(summary.reasons)
    # a point within 0.1 ft (3 cm) of the city line may land on either side after reprojection
    slack = int((near & ~unknown).sum())
    assert abs(reasons.get("outside_jurisdiction", 0) - expected.get("outside_jurisdiction", 0)) <= slack
    expected["outside_jurisdiction"] = reasons.get("outside_jurisdiction", 0)
    events, rejects = _check_accounting(summary, n, settings, expected)
    _check_unmapped(summary, "portland_nij", events, min_mapped_share=0.9)

    # ids: row hashes; the ~750 exact repeats are separate events numbered -2, -3 …, not merged or lost
    repeat = native.duplicated().to_numpy()  # the same values as an earlier row of the file
    assert repeat.sum() > 500
    occurrence = events["source_record_id"].str.rsplit("-", n=1).str[1].astype(int)
    assert events["source_record_id"].str.fullmatch(r"[0-9a-f]{16}-\d+").all()
    assert (occurrence > 1).sum() == repeat[events["source_row"].to_numpy() - 1].sum()
    assert events["event_id"].is_unique
    assert set(rejects["reason"]) <= {"unknown_category", "outside_jurisdiction"}  # never duplicate_in_file

    # places: every loaded point is in the district the raw feet say (checked in the original CRS)
    assert (events["geocode_precision"] == "point").all() and events["h3_cell"].notna().all()
    assert (events["county_code"] == county).all()
    assert (events["grid_code"].str[:12] == events["village_code"]).all()
    sample = events.sample(2000, random_state=1)
    raw = native.iloc[sample["source_row"].to_numpy() - 1]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(raw["x_coordinate"], raw["y_coordinate"]), crs=crs)
    hit = gpd.sjoin(pts, layers["grids"], predicate="within", how="left")
    hit = hit[~hit.index.duplicated()]
    agree = (hit["code"].to_numpy() == sample["grid_code"].to_numpy()).mean()
    assert agree > 0.995, agree
    lng_ok = events["lng"].between(-122.9, -122.3) & events["lat"].between(45.4, 45.7)
    assert lng_ok.all()

    # times: date only, local midnight in Portland, precision recorded; no status -> registered
    local = events["reported_at"].dt.tz_convert("America/Los_Angeles")
    assert (local.dt.hour == 0).all() and (local.dt.minute == 0).all()
    assert set(local.dt.month) == {8, 9, 11}
    assert all(json.loads(e)["time_precision"] == "day" for e in events["ext"].head(100))
    assert json.loads(events["ext"].iloc[0]).keys() >= {"CATEGORY", "CALL GROUPS", "census_tract"}
    assert (events["status"] == "登记受理").all()
    top = events["category_code"].value_counts()
    assert top.index[0] in ("MD9902", "ZA") and {"MD09", "MD14", "MS", "CG"} <= set(top.index)

    # loading the same file again changes nothing: the hash ids are stable
    [again] = ingest(settings, "police", [path], profile_name="portland_nij", force=True, progress=False)
    assert again.reconciles and again.unchanged == summary.inserted and again.inserted == again.updated == 0


# ------------------------------------------------------------------------------------------ Milwaukee

MKE_BOX = (-88.1, 42.8, -87.8, 43.2)


def test_milwaukee_calls_for_service(shared_data, tmp_path):
    cfs = pd.read_parquet(shared_data / "milwaukee_pd_calls_for_service_2018.parquet")
    folder = tmp_path / "milwaukee"
    _write_deployment(folder, _box_partition("550079", MKE_BOX, (3, 4), (2, 2), (2, 2)), "box2018",
                      "Milwaukee city box partitioned into rectangles (synthetic)")
    settings = _settings(tmp_path, folder, "550079", "Milwaukee (box)", "America/Chicago")
    load_geography(settings, folder, None)

    path = tmp_path / "mke_calls_for_service.csv"
    cfs.assign(time=cfs["time"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(path, index=False)
    [summary] = ingest(settings, "police", [path], profile_name="milwaukee_cfs", progress=False)
    print(summary.line())  # shown with -s, and on failure

    n = len(cfs)
    lat, lng = cfs["latitude"], cfs["longitude"]
    no_point = (lat.isna() | lng.isna()).to_numpy()
    in_box = (lng.between(MKE_BOX[0], MKE_BOX[2]) & lat.between(MKE_BOX[1], MKE_BOX[3])).to_numpy()
    expected = _first_reason(n, [("unknown_category", _unknown(cfs["nature"], "milwaukee_cfs")),
                                 ("no_location", no_point), ("outside_jurisdiction", ~in_box)])
    assert expected["no_location"] <= 11 and expected["outside_jurisdiction"] > 30
    events, rejects = _check_accounting(summary, n, settings, expected)
    # about half the log is officer-initiated activity, deliberately unmapped; the rest all maps
    _check_unmapped(summary, "milwaukee_cfs", events, min_mapped_share=0.4)
    assert {"TRAFFIC STOP", "BUSINESS CHECK", "RETURN STATION"} <= set(summary.unmapped)
    assert rejects.loc[rejects["reason"] == "unknown_category", "detail"].str.contains("有意不纳入").all()

    # statuses: dispositions mapped, raw disposition kept; final ones closed at the call time (documented rule)
    ext = events["ext"].map(json.loads)
    raw_status = ext.map(lambda e: e["status"])
    in_progress = raw_status.isin(["Service in Progress", "Open Investigation"])
    assert (events.loc[~in_progress, "status"] == "已办结").all()
    assert (events.loc[raw_status == "Service in Progress", "status"] == "分类流转").all()
    assert (events.loc[raw_status == "Open Investigation", "status"] == "跟踪督办").all()
    closed = events["status"] == "已办结"
    assert (events.loc[closed, "closed_at"] == events.loc[closed, "reported_at"]).all()
    assert ext[closed].map(lambda e: "closed_at_rule" in e).all() and events.loc[~closed, "closed_at"].isna().all()

    # times are Milwaukee wall-clock time: the first call of the log is 2018-05-01 00:10:28 CDT
    first = events.loc[events["source_record_id"] == "1211372", "reported_at"].iloc[0]
    assert first == pd.Timestamp("2018-05-01 00:10:28", tz="America/Chicago")
    assert (events["geocode_precision"] == "point").all()
    assert {"MD9902", "MD01", "MD09", "MD14", "MS", "ZA"} <= set(events["category_code"])
    dv = events["category_raw_code"].str.endswith("DV")
    assert events.loc[dv, "flags"].map(lambda f: f is not None and "domestic_violence" in list(f)).all()


# ------------------------------------------------------------------------------------------ San Luis Obispo

SLO_BEATS = [f"PN{i}" for i in range(1, 14)]


def test_slo_call_log_by_beat(shared_data, tmp_path):
    log = pd.read_parquet(shared_data / "slo_pd_call_log_2021_2022.parquet")
    county, town = "060079", "060079001"
    x0, y0, x1, y1 = -120.72, 35.24, -120.60, 35.32  # a box around the city; strips are synthetic
    xs = np.linspace(x0, x1, len(SLO_BEATS) + 1)
    strips = [shapely.box(xs[i], y0, xs[i + 1], y1) for i in range(len(SLO_BEATS))]
    vcodes = [f"{town}{i:03d}" for i in range(1, len(SLO_BEATS) + 1)]
    layers = {
        "county": gpd.GeoDataFrame({"code": [county], "name": ["San Luis Obispo"]},
                                   geometry=[shapely.box(x0, y0, x1, y1)], crs="EPSG:4326"),
        "towns": gpd.GeoDataFrame({"code": [town], "name": ["SLO city"]}, geometry=[shapely.box(x0, y0, x1, y1)],
                                  crs="EPSG:4326"),
        "villages": gpd.GeoDataFrame({"code": vcodes, "name": [f"Beat {b} area" for b in SLO_BEATS]},
                                     geometry=strips, crs="EPSG:4326"),
        "grids": gpd.GeoDataFrame({"code": [v + "001" for v in vcodes], "name": SLO_BEATS},
                                  geometry=strips, crs="EPSG:4326"),
    }
    folder = tmp_path / "slo"
    _write_deployment(folder, layers, "beats2021", "SLO police beats PN1-PN13 as grids (synthetic strips)")
    settings = _settings(tmp_path, folder, county, "San Luis Obispo", "America/Los_Angeles")
    load_geography(settings, folder, None)

    path = tmp_path / "SLOPD_report.csv"
    ts = ["received_ts", "dispatched_ts", "arrived_ts", "cleared_ts"]
    native = log.copy()
    for c in (*ts, "date"):
        native[c] = native[c].dt.strftime("%Y-%m-%d %H:%M:%S")
    native.to_csv(path, index=False)
    [summary] = ingest(settings, "police", [path], profile_name="slo_calllog", progress=False)
    print(summary.line())  # shown with -s, and on failure

    n = len(log)
    missing = log["type"].isna().to_numpy()
    unknown = _unknown(log["type"], "slo_pd")
    no_beat = ~log["grid_location"].isin(SLO_BEATS).to_numpy()
    rules = [("missing_required", missing), ("unknown_category", unknown), ("no_location", no_beat)]
    before_dup = np.zeros(n, dtype=bool)
    for _, mask in rules:
        before_dup |= mask
    later_again = log["case_number"].duplicated(keep="last").to_numpy()
    expected = _first_reason(n, [*rules, ("duplicate_in_file", later_again & ~before_dup)])
    assert expected["missing_required"] == 155 and expected["duplicate_in_file"] > 500
    events, rejects = _check_accounting(summary, n, settings, expected)
    _check_unmapped(summary, "slo_calllog", events, min_mapped_share=0.6)
    assert "9-1-1 ABANDON" in summary.unmapped

    # placed by beat name at grid precision, never given a point
    beat_of = dict(zip(layers["grids"]["code"], layers["grids"]["name"], strict=True))
    raw = log.iloc[events["source_row"].to_numpy() - 1]
    assert (events["grid_code"].map(beat_of).to_numpy() == raw["grid_location"].astype(str).to_numpy()).all()
    assert (events["geocode_method"] == "grid-code").all() and (events["geocode_precision"] == "grid").all()
    assert events["lng"].isna().all() and events["h3_cell"].isna().all()
    assert (events["village_code"] == events["grid_code"].str[:12]).all() and (events["town_code"] == town).all()

    # clearance codes: all final -> closed at the latest of received/dispatched/arrived; none -> registered
    has_code = raw["clearance_code"].notna().to_numpy()
    assert (events.loc[has_code, "status"] == "已办结").all() and (events.loc[~has_code, "status"] == "登记受理").all()
    latest = raw[["received_ts", "dispatched_ts", "arrived_ts"]].max(axis=1)
    # ambiguous wall-clock times (2021-11-07 01:xx) are read as summer time, the profile's documented rule
    latest = latest.dt.tz_localize("America/Los_Angeles", ambiguous=np.ones(len(latest), dtype=bool))
    closed = events["status"] == "已办结"
    assert (events.loc[closed, "closed_at"].to_numpy() == latest[has_code].dt.tz_convert("UTC").to_numpy()).all()
    assert (events.loc[closed, "closed_at"] >= events.loc[closed, "reported_at"]).all()
    assert "PN5" in set(events["grid_code"].map(beat_of))  # the busiest beat
    assert {"MD9902", "MD02", "MS", "CG", "ZA"} <= set(events["category_code"])


# ------------------------------------------------------------------------------------------ NYC 311

def test_nyc311_hotline_work_orders(shared_data, tmp_path):
    sr = pd.read_parquet(shared_data / "nyc311_samples_2023_2025.parquet")
    box = (float(sr["longitude"].min()) - 0.01, float(sr["latitude"].min()) - 0.01,
           float(sr["longitude"].max()) + 0.01, float(sr["latitude"].max()) + 0.01)
    folder = tmp_path / "nyc"
    _write_deployment(folder, _box_partition("360061", box, (3, 3), (2, 2), (2, 2)), "box2023",
                      "NYC 311 sample extent partitioned into rectangles (synthetic)")
    settings = _settings(tmp_path, folder, "360061", "NYC (box)", "America/New_York")
    load_geography(settings, folder, None)

    # Socrata JSON lines: every value a string, times as 2023-02-28T23:45:00.000, nulls left out
    path = tmp_path / "erm2-nwe9.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for rec in sr.drop(columns=["sample"]).to_dict("records"):
            out = {}
            for k, v in rec.items():
                if v is None or (not isinstance(v, str) and pd.isna(v)):
                    continue
                if isinstance(v, pd.Timestamp):
                    v = v.strftime("%Y-%m-%dT%H:%M:%S.000")
                elif isinstance(v, float) and v.is_integer() and k not in ("latitude", "longitude"):
                    v = str(int(v))
                out[k] = str(v)
            fh.write(json.dumps(out) + "\n")
    [summary] = ingest(settings, "hotline", [path], profile_name="nyc311", progress=False)
    print(summary.line())  # shown with -s, and on failure

    n = len(sr)
    expected = _first_reason(n, [
        ("closed_before_reported", (sr["closed_date"] < sr["created_date"]).to_numpy()),
        ("unknown_category", _unknown(sr["complaint_type"], "nyc311")),
        ("no_location", (sr["latitude"].isna() | sr["longitude"].isna()).to_numpy()),
    ])
    assert expected == {"no_location": 149, "closed_before_reported": 2, "unknown_category": 5}
    events, _rejects = _check_accounting(summary, n, settings, expected)
    _check_unmapped(summary, "nyc311", events, min_mapped_share=0.95)

    assert (events["source"] == "hotline").all() and events["event_id"].str.startswith("hotline:").all()
    raw = sr.iloc[events["source_row"].to_numpy() - 1]
    pairs = set(zip(raw["status"], events["status"], strict=True))
    mapping = {"Closed": "已办结", "Open": "登记受理", "Pending": "登记受理", "Assigned": "分类流转",
               "In Progress": "分类流转", "Started": "分类流转"}
    assert pairs <= set(mapping.items()) and {"Closed", "Open", "Assigned", "In Progress"} <= {r for r, _ in pairs}
    assert (events["ext"].map(lambda e: json.loads(e)["status"]).to_numpy() == raw["status"].to_numpy()).all()
    closed = events["status"] == "已办结"
    assert events.loc[closed, "closed_at"].notna().all()
    got = events.loc[closed, "closed_at"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    assert (got.to_numpy() == raw.loc[closed.to_numpy(), "closed_date"].to_numpy()).all()  # New York wall clock
    cats = events["category_code"].value_counts()
    assert {"MD15", "MD02", "CG", "ZA"} <= set(cats.index)
    assert (events.loc[events["category_raw_code"] == "HEAT/HOT WATER", "category_code"] == "MD15").all()
    assert (events["geocode_precision"] == "point").all()
