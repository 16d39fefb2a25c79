"""A second county set up by configuration and its files alone: 延吉市 (222401), Jilin.

The deployment folder is made here from ../shared/data: the real Tianditu county boundary (WGS84) and
the 14 real NBS 2023 township codes and names; the township, village and grid POLYGONS are synthetic
(seeded Voronoi partitions of the county, since township boundaries are not public). The layers are
written as one GeoPackage in CGCS2000 / 3-degree Gauss-Krüger CM 129E (EPSG:4549), with the grid
layer's own column names declared in an ``areas.toml`` beside it. Settings come from environment
variables only; then `load_geography` stores the boundaries and a police export is ingested into them.
"""
from __future__ import annotations

import csv
import json

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from onemap.settings import load_settings
from pipelines.areas_load import load_geography, read_area_set
from pipelines.ingest import ingest

YANJI = "222401"
GK_129E = "EPSG:4549"  # CGCS2000 / 3-degree Gauss-Kruger CM 129E (延吉 is at ~129.5E)
VILLAGES_PER_TOWN = 3
GRIDS_PER_VILLAGE = 4
TEST_HMAC_KEY = "7365636f6e642d636f756e74792d746573742d6b6579"  # test-only


def partition(poly, n: int, rng: np.random.Generator) -> list:
    """``n`` pieces tiling ``poly``: Voronoi cells of random seeds inside it, clipped to it (in metres)."""
    minx, miny, maxx, maxy = poly.bounds
    seeds = np.empty((0, 2))
    while len(seeds) < n:
        x, y = rng.uniform(minx, maxx, 8 * n), rng.uniform(miny, maxy, 8 * n)
        ok = shapely.contains_xy(poly, x, y)
        seeds = np.vstack([seeds, np.column_stack([x[ok], y[ok]])])
    seeds = seeds[:n]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=poly, ordered=True))
    pieces = []
    for cell in cells:
        piece = shapely.intersection(cell, poly)
        polys = [p for p in shapely.get_parts(piece) if p.geom_type == "Polygon" and p.area > 0]
        pieces.append(polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys))
    return pieces


@pytest.fixture(scope="module")
def deployment(shared_data, tmp_path_factory):
    """The 延吉市 deployment folder: one GeoPackage in EPSG:4549 plus areas.toml."""
    src = gpd.read_parquet(shared_data / "cn_county_boundaries_tianditu_wgs84.parquet")
    county_wgs = src[src["district_adcode"].astype(str) == YANJI]
    assert len(county_wgs) == 1
    nbs = pd.read_parquet(shared_data / "cn_township_codes_nbs2023.parquet")
    nbs = nbs[nbs["areaCode"].astype(str) == YANJI].sort_values("code")
    assert len(nbs) == 14
    county_gk = county_wgs.to_crs(GK_129E).geometry.iloc[0]
    rng = np.random.default_rng(222401)
    towns, villages, grids = [], [], []
    for (tcode, tname), tgeom in zip(zip(nbs["code"].astype(str), nbs["name"], strict=True),
                                     partition(county_gk, len(nbs), rng), strict=True):
        towns.append({"区划代码": tcode, "名称": tname, "geometry": tgeom})
        stem = tname.removesuffix("街道").removesuffix("镇")
        for v, vgeom in enumerate(partition(tgeom, VILLAGES_PER_TOWN, rng), start=1):
            vcode = f"{tcode}{v:03d}"
            villages.append({"code": vcode, "name": f"{stem}第{v}社区", "geometry": vgeom})
            for g, ggeom in enumerate(partition(vgeom, GRIDS_PER_VILLAGE, rng), start=1):
                grids.append({"WGBM": f"{vcode}{g:03d}", "WGMC": f"{stem}第{v}社区第{g}网格", "geometry": ggeom})
    folder = tmp_path_factory.mktemp("yanji_deployment")
    gpkg = folder / "yanji_boundaries.gpkg"
    gpd.GeoDataFrame({"code": [YANJI], "name": ["延吉市"]}, geometry=[county_gk], crs=GK_129E).to_file(
        gpkg, layer="county", driver="GPKG")
    for layer, rows in (("towns", towns), ("villages", villages), ("grids", grids)):
        gpd.GeoDataFrame(rows, geometry="geometry", crs=GK_129E).to_file(gpkg, layer=layer, driver="GPKG")
    (folder / "areas.toml").write_text(
        '# 延吉市 boundaries: grid layer exported from the 网格化 system with its own column names\n'
        '[code_column]\ngrids = "WGBM"\n[name_column]\ngrids = "WGMC"\n', encoding="utf-8")
    towns_gk = gpd.GeoDataFrame(towns, geometry="geometry", crs=GK_129E).rename(columns={"区划代码": "code"})
    return {"folder": folder, "county_wgs": county_wgs.geometry.iloc[0], "towns_gk": towns_gk,
            "codes": dict(zip(nbs["code"].astype(str), nbs["name"], strict=True))}


@pytest.fixture()
def settings(deployment, tmp_path, monkeypatch):
    monkeypatch.setenv("ONEMAP_HMAC_KEY", TEST_HMAC_KEY)  # the key is read from the process environment
    environ = {
        "ONEMAP_HOME": str(tmp_path / "home"),
        "ONEMAP_GEO__AREAS_DIR": str(deployment["folder"]),
        "ONEMAP_GEO__COUNTY_CODE": YANJI,
        "ONEMAP_GEO__COUNTY_NAME": "延吉市",
    }
    return load_settings(environ=environ, local_file=tmp_path / "no-local-config.toml")


def test_settings_come_from_the_environment(settings, deployment):
    assert settings.county_code == YANJI and settings.county_name == "延吉市"
    assert settings.areas_dir == deployment["folder"].resolve()


def test_load_geography_of_the_second_county(settings):
    areas, report = load_geography(settings, settings.areas_dir, "2023")
    assert report.issues == [], report.summary()  # a clean partition loads clean
    assert areas.county_code == YANJI and areas.vintage == "2023"
    assert len(areas.towns) == 14
    assert len(areas.villages) == 14 * VILLAGES_PER_TOWN and len(areas.grids) == 14 * VILLAGES_PER_TOWN * GRIDS_PER_VILLAGE
    assert (areas.grids["code"].str[:12] == areas.grids["parent_code"]).all()
    assert areas.grids["name"].str.endswith("网格").all()  # the configured WGMC column
    assert all(gdf.crs.equals("EPSG:4326") for gdf in (areas.county, areas.towns, areas.villages, areas.grids))
    lng, lat = areas.county.geometry.iloc[0].centroid.coords[0]
    assert 129.2 < lng < 129.6 and 42.8 < lat < 43.4  # reprojected from Gauss-Krüger metres to degrees
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        counts = dict(con.execute("SELECT level, count(*) FROM core.areas WHERE vintage = '2023' GROUP BY level")
                      .fetchall())
        assert counts == {"county": 1, "town": 14, "village": 42, "grid": 168}
        [(errors, county)] = con.execute("SELECT errors, county_code FROM meta.area_vintages").fetchall()
        assert errors == 0 and county == YANJI
        stored = read_area_set(con)
        assert stored.vintage == "2023" and set(stored.grids["code"]) == set(areas.grids["code"])
    finally:
        con.close()


def _police_rows(points, addresses, start=0):
    rows = []
    for k, ((lng, lat), address) in enumerate(zip(points, addresses, strict=True), start=start):
        closed = k % 3 == 0
        day = 1 + k % 27
        rows.append({
            "接警单编号": f"YJ2025{k:05d}", "报警时间": f"2025-03-{day:02d} 10:{k % 60:02d}:00",
            "报警类别代码": "200201", "报警内容": f"报警人称与邻居发生纠纷，联系电话1381234{k:04d}",
            "案发地址": address, "经度": f"{lng:.6f}", "纬度": f"{lat:.6f}", "报警人姓名": f"测试人{k}",
            "报警电话": f"1381234{k:04d}", "接警单状态": "已办结" if closed else "登记受理",
            "办理期限": f"2025-03-{day:02d} 18:00:00", "办结时间": f"2025-03-{day:02d} 16:00:00" if closed else "",
            "处置结果": "化解" if closed else "",
        })
    return rows


def test_events_land_in_the_second_county(settings, deployment, tmp_path):
    load_geography(settings, settings.areas_dir, "2023")
    rng = np.random.default_rng(7)
    county = deployment["county_wgs"]
    core = county.buffer(-0.003)  # well inside: no point within ~300 m of the county line
    minx, miny, maxx, maxy = county.bounds
    x, y = rng.uniform(minx, maxx, 400), rng.uniform(miny, maxy, 400)
    ins = shapely.contains_xy(core, x, y)
    inside = list(zip(x[ins][:40], y[ins][:40], strict=True))
    # in the county's bounding box but outside its boundary (neighbouring 龙井市/图们市/汪清县), plus one far away
    far_out = ~shapely.contains_xy(county.buffer(0.01), x, y)
    outside = list(zip(x[far_out][:3], y[far_out][:3], strict=True)) + [(116.40, 39.90)]
    assert len(inside) == 40 and len(outside) == 4
    rows = (_police_rows(inside, ["延吉市某小区"] * len(inside))
            + _police_rows(outside, ["某某路18号"] * len(outside), start=len(inside)))
    path = tmp_path / "延吉_非警务警情_2025-03.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    [summary] = ingest(settings, "police", [path], progress=False)
    assert summary.reconciles and summary.rows_read == 44
    assert summary.inserted == 40 and summary.quarantined == 4
    assert summary.reasons == {"outside_jurisdiction": 4}

    # the expected town of each inside point, straight from the Gauss-Krüger polygons that were written
    pts_gk = gpd.GeoSeries(gpd.points_from_xy(*zip(*inside, strict=True)), crs="EPSG:4326").to_crs(GK_129E)
    towns_gk = deployment["towns_gk"]
    hit = gpd.sjoin(gpd.GeoDataFrame(geometry=pts_gk), towns_gk, predicate="within")
    expected = dict(zip((f"police:YJ2025{k:05d}" for k in hit.index), hit["code"], strict=True))
    assert len(expected) == 40

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        ev = con.execute("SELECT event_id, county_code, town_code, village_code, grid_code, geocode_precision, "
                         "h3_cell, party_keys FROM core.events ORDER BY event_id").df()
        rejects = con.execute("SELECT source_row, reason FROM staging.rejects ORDER BY source_row").fetchall()
    finally:
        con.close()
    assert len(ev) == 40
    assert (ev["county_code"] == YANJI).all()
    assert set(ev["town_code"]) <= set(deployment["codes"])
    assert dict(zip(ev["event_id"], ev["town_code"], strict=True)) == expected
    assert (ev["grid_code"].str[:12] == ev["village_code"]).all() and (ev["village_code"].str[:9] == ev["town_code"]).all()
    assert (ev["geocode_precision"] == "point").all() and ev["h3_cell"].notna().all()
    assert all(len(k) and all("138" not in p for p in k) for k in ev["party_keys"])  # pseudonyms, not phones
    assert rejects == [(41, "outside_jurisdiction"), (42, "outside_jurisdiction"), (43, "outside_jurisdiction"),
                       (44, "outside_jurisdiction")]

    # the map page is the county's own: its name, and no "demo data" badge (its boundaries are not synthetic)
    from dashboard.app import create_app

    layout = json.dumps(create_app(settings).server.test_client().get("/_dash-layout").get_json(), ensure_ascii=False)
    assert "民情地图 · 延吉市" in layout and "合成数据" not in layout
