"""Bundled demo geography (汕尾市城区) and geodata.areas: loading, tiling, point assignment, addresses."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodata.areas import (
    DEMO_DIR,
    AreaSet,
    assign_areas,
    bbox,
    demo_area_set,
    gazetteer,
    load_area_set,
    normalise_address,
    resolve_address,
)

REAL_TOWNS = {
    "441502001": "新港街道", "441502002": "香洲街道", "441502003": "凤山街道", "441502004": "田墘街道",
    "441502005": "东洲街道", "441502006": "遮浪街道", "441502007": "马宫街道", "441502100": "红草镇",
    "441502102": "东涌镇", "441502103": "捷胜镇",
}


@pytest.fixture(scope="module")
def areas() -> AreaSet:
    return demo_area_set()


# ------------------------------------------------------------------------------------- bundled files

def test_bundled_files_load_and_are_small(areas):
    assert areas.vintage == "2023"
    assert len(areas.county) == 1 and areas.county_code == "441502"
    assert len(areas.towns) == 10
    assert 600 <= len(areas.grids) <= 1500
    for gdf in (areas.county, areas.towns, areas.villages, areas.grids):
        assert gdf.crs.equals("EPSG:4326")
        assert {"code", "name", "level", "parent_code", "synthetic", "vintage"} <= set(gdf.columns)
        assert gdf.geometry.is_valid.all()
        assert (gdf.geom_type == "Polygon").all()  # contiguous: one part each
    total = sum(p.stat().st_size for p in DEMO_DIR.glob("*.geojson"))
    assert total < 3 * 1024 * 1024
    assert (DEMO_DIR / "SOURCES.md").exists()


def test_codes_consistent_with_parents(areas):
    t, v, g = areas.towns, areas.villages, areas.grids
    assert (t["code"].str.len() == 9).all() and (t["code"].str[:6] == "441502").all()
    assert (t["parent_code"] == "441502").all()
    assert (v["code"].str.len() == 12).all() and (v["code"].str[:9] == v["parent_code"]).all()
    assert (g["code"].str.len() == 15).all() and (g["code"].str[:12] == g["parent_code"]).all()
    assert set(v["parent_code"]) == set(t["code"])
    assert set(g["parent_code"]) == set(v["code"])
    for df in (t, v, g):
        assert df["code"].is_unique and df["code"].str.fullmatch(r"\d+").all()
    per_town = v.groupby("parent_code").size()
    assert per_town.between(4, 15).all()
    seq = v["code"].str[9:].astype(int)
    is_comm = v["name"].str.endswith("社区")
    assert seq[is_comm].between(1, 199).all() and seq[~is_comm].between(200, 399).all()
    assert v["synthetic"].all() and g["synthetic"].all()
    assert not t["synthetic"].any() and t["geometry_synthetic"].all()


def test_real_towns_present(areas):
    assert dict(zip(areas.towns["code"], areas.towns["name"], strict=True)) == REAL_TOWNS


def test_real_towns_match_nbs_table(areas, shared_data):
    nbs = pd.read_parquet(shared_data / "cn_township_codes_nbs2023.parquet")
    nbs = nbs[nbs["areaCode"].astype(str) == "441502"]
    assert dict(zip(nbs["code"].astype(str), nbs["name"], strict=True)) == REAL_TOWNS


def test_county_is_the_real_tianditu_boundary(areas, shared_data):
    src = gpd.read_parquet(shared_data / "cn_county_boundaries_tianditu_wgs84.parquet")
    real = src[src["district_adcode"].astype(str) == "441502"].geometry.iloc[0]
    ours = areas.county.geometry.iloc[0]
    assert shapely.hausdorff_distance(real, ours) < 2e-6
    assert abs(real.area - ours.area) / real.area < 1e-5


@pytest.mark.parametrize("layer", ["towns", "villages", "grids"])
def test_layers_tile_the_county_exactly(areas, layer):
    county = areas.county.geometry.iloc[0]
    geoms = getattr(areas, layer).geometry.values
    assert shapely.coverage_is_valid(geoms)  # no overlaps, edges match
    assert abs(shapely.area(geoms).sum() - county.area) < 1e-9
    assert shapely.symmetric_difference(shapely.union_all(geoms), county).area < 1e-9


def test_children_nest_in_parents(areas):
    v = areas.villages.set_index("code").geometry
    t = areas.towns.set_index("code").geometry
    for code, geom in zip(areas.grids["code"], areas.grids.geometry, strict=True):
        assert shapely.difference(geom, v[code[:12]]).area < 1e-12
    for code, geom in v.items():
        assert shapely.difference(geom, t[code[:9]]).area < 1e-12


def test_pop_weight(areas):
    w = areas.grids["pop_weight"]
    assert (w > 0).all() and abs(w.sum() - 1) < 1e-4
    dens = areas.grids.assign(d=w / areas.grids.to_crs(32650).area).groupby(areas.grids["code"].str[:9])["d"].median()
    urban = dens[["441502001", "441502002", "441502003"]].min()
    rural = dens[["441502100", "441502102", "441502103"]].max()
    assert urban > rural  # denser in the urban streets


def test_geojson_is_compact_with_6_decimals():
    doc = json.loads((DEMO_DIR / "grids.geojson").read_text(encoding="utf-8"))
    xs = doc["features"][0]["geometry"]["coordinates"][0]
    assert all(round(c, 6) == c for pt in xs for c in pt)


# ------------------------------------------------------------------------------------- assignment

def test_assign_representative_points(areas):
    rp = shapely.point_on_surface(areas.grids.geometry.values)
    out = assign_areas(areas, shapely.get_x(rp), shapely.get_y(rp))
    assert list(out.columns) == ["county_code", "town_code", "village_code", "grid_code"]
    assert (out["grid_code"].to_numpy() == areas.grids["code"].to_numpy()).all()
    assert (out["village_code"] == out["grid_code"].str[:12]).all()
    assert (out["town_code"] == out["grid_code"].str[:9]).all()
    assert (out["county_code"] == "441502").all()


def test_assign_outside_and_nan_give_none(areas):
    lng = np.array([116.0, 115.30, np.nan, 0.0, 115.5])
    lat = np.array([22.8, 22.70, 22.78, 0.0, np.nan])  # 115.30/22.70 is in the sea, inside the bbox
    out = assign_areas(areas, lng, lat)
    assert out.isna().all().all()
    assert all(v is None for v in out["grid_code"])


def test_assign_keeps_series_index(areas):
    rp = areas.grids.geometry.iloc[:3].representative_point()
    out = assign_areas(areas, pd.Series(rp.x.values, index=[10, 20, 30]), pd.Series(rp.y.values, index=[10, 20, 30]))
    assert list(out.index) == [10, 20, 30]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_assign_found_grid_contains_point(areas, fx, fy):
    minx, miny, maxx, maxy = bbox(areas)
    x, y = minx + fx * (maxx - minx), miny + fy * (maxy - miny)
    out = assign_areas(areas, [x], [y]).iloc[0]
    inside = shapely.intersects_xy(areas.county.geometry.iloc[0], x, y)
    if not inside:
        assert out["grid_code"] is None
        return
    code = out["grid_code"]
    assert code is not None
    geom = areas.grids.set_index("code").geometry[code]
    assert shapely.intersects_xy(geom, x, y)
    assert shapely.intersects_xy(areas.villages.set_index("code").geometry[out["village_code"]], x, y)
    assert shapely.intersects_xy(areas.towns.set_index("code").geometry[out["town_code"]], x, y)


def test_assign_many_points_fast(areas):
    import time

    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = bbox(areas)
    n = 200_000
    x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    t = time.perf_counter()
    out = assign_areas(areas, x, y)
    assert time.perf_counter() - t < 5.0
    assert 0.2 < out["grid_code"].notna().mean() < 0.8


# ------------------------------------------------------------------------------------- loading

def test_load_roundtrip_gpkg_projected(areas, tmp_path):
    """A deployment's own layers: one GeoPackage, CGCS2000 3-degree Gauss-Krüger (EPSG:4547), Chinese headers."""
    gpkg = tmp_path / "areas.gpkg"
    for layer in ("towns", "villages", "grids"):
        gdf = getattr(areas, layer)[["code", "name", "geometry"]].rename(columns={"code": "编码", "name": "名称"})
        gdf.to_crs("EPSG:4547").to_file(gpkg, layer=layer, driver="GPKG")
    loaded = load_area_set(gpkg, vintage="2024")
    assert loaded.vintage == "2024"
    assert loaded.county_code == "441502"  # dissolved from the towns
    assert (loaded.grids["parent_code"] == loaded.grids["code"].str[:12]).all()
    rp = shapely.point_on_surface(areas.grids.geometry.values[:50])
    out = assign_areas(loaded, shapely.get_x(rp), shapely.get_y(rp))
    assert (out["grid_code"].to_numpy() == areas.grids["code"].to_numpy()[:50]).all()


def test_load_shapefile_and_parquet_dir(areas, tmp_path):
    areas.county[["code", "name", "geometry"]].to_file(tmp_path / "county.shp", encoding="utf-8")
    areas.towns.to_parquet(tmp_path / "towns.parquet")
    areas.villages.to_file(tmp_path / "villages.geojson", driver="GeoJSON")
    areas.grids.to_parquet(tmp_path / "grids.parquet")
    loaded = load_area_set(tmp_path)
    assert len(loaded.grids) == len(areas.grids) and loaded.vintage == "2023"
    assert set(loaded.towns["name"]) == set(REAL_TOWNS.values())


def test_load_missing_layer(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_area_set(tmp_path)


# ------------------------------------------------------------------------------------- addresses

def test_gazetteer(areas):
    gaz = gazetteer(areas)
    assert list(gaz.columns) == ["code", "name", "level", "parent_code", "aliases"]
    assert len(gaz) == len(areas.towns) + len(areas.villages) + len(areas.grids)
    row = gaz.set_index("code").loc["441502100"]
    assert row["name"] == "红草镇" and "红草" in row["aliases"]
    v = gaz[gaz["level"] == "village"]
    comm = v[v["name"].str.endswith("社区")].iloc[0]
    assert comm["name"].removesuffix("社区") + "社区居委会" in comm["aliases"]
    vil = v[v["name"].str.endswith("村")].iloc[0]
    assert vil["name"] + "委会" in vil["aliases"]


def _village(areas, town_code, kind="村"):
    v = areas.villages
    return v[(v["parent_code"] == town_code) & v["name"].str.endswith(kind)].iloc[0]


def test_resolve_address_levels(areas):
    vil = _village(areas, "441502100")  # a 村 in 红草镇
    comm = _village(areas, "441502003", "社区")  # a 社区 in 凤山街道
    stem = comm["name"].removesuffix("社区")
    texts = pd.Series([
        "广东省汕尾市城区红草镇政府附近",                      # town
        f"红草镇{vil['name']}委会门口",                          # village via 村委会 alias
        f"{stem}社区居委会３号网格旁",                            # full-width digit, grid number rule
        f"凤山街道{comm['name']}第二网格对面",                    # Chinese numeral
        "某某路18号",                                            # nothing
        "",
    ], index=list("abcdef"))
    out = resolve_address(areas, texts)
    assert list(out.columns) == ["town_code", "village_code", "grid_code", "precision"]
    assert list(out.index) == list("abcdef")
    assert out.loc["a"].tolist() == ["441502100", None, None, "town"]
    assert out.loc["b"].tolist() == ["441502100", vil["code"], None, "village"]
    unique_comm = (areas.villages["name"] == comm["name"]).sum() == 1
    if unique_comm:
        assert out.loc["c"].tolist() == ["441502003", comm["code"], comm["code"] + "003", "grid"]
    assert out.loc["d"].tolist() == ["441502003", comm["code"], comm["code"] + "002", "grid"]
    assert out.loc["e", "precision"] == "none" and out.loc["f", "precision"] == "none"
    assert out.loc["e"].iloc[:3].isna().all()


def test_resolve_duplicate_village_names(areas):
    v = areas.villages
    dup = v[v["name"].duplicated(keep=False)].sort_values("code")
    assert len(dup), "demo data should contain a repeated village name across towns"
    name = dup["name"].iloc[0]
    rows = dup[dup["name"] == name]
    town_name = dict(zip(areas.towns["code"], areas.towns["name"], strict=True))
    texts = [f"{town_name[t]}{name}" for t in rows["parent_code"]] + [f"{name}附近"]
    out = resolve_address(areas, texts)
    for i, (code, parent) in enumerate(zip(rows["code"], rows["parent_code"], strict=True)):
        assert out.iloc[i].tolist() == [parent, code, None, "village"]
    assert out.iloc[-1]["precision"] == "none"  # ambiguous without a town: not guessed


def test_resolve_conflicting_town_keeps_town(areas):
    vil = _village(areas, "441502100")
    if (areas.villages["name"] == vil["name"]).sum() > 1:
        pytest.skip("name repeated")
    out = resolve_address(areas, [f"东涌镇{vil['name']}"]).iloc[0]
    assert out.tolist() == ["441502102", None, None, "town"]


def test_resolve_grid_name_and_code(areas):
    g = areas.grids.iloc[123]
    out = resolve_address(areas, [f"{dict(zip(areas.towns['code'], areas.towns['name'], strict=True))[g['code'][:9]]}{g['name']}",
                                  f"网格编码{g['code']}"])
    for i in range(2):
        assert out.iloc[i].tolist() == [g["code"][:9], g["code"][:12], g["code"], "grid"]


def test_normalise_address():
    assert normalise_address("红草镇　ＡＢ１２号 门口") == "红草镇AB12号"


def test_prepare_builds_the_lookups_and_changes_no_answer():
    fresh = load_area_set(DEMO_DIR)
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = bbox(fresh)
    lng, lat = rng.uniform(minx, maxx, 30_000), rng.uniform(miny, maxy, 30_000)
    lazy = assign_areas(load_area_set(DEMO_DIR), lng, lat)
    assert fresh.prepare() is fresh
    assert {"_grid_raster", "grid_codes", "_address_index"} <= set(vars(fresh))
    pd.testing.assert_frame_equal(assign_areas(fresh, lng, lat), lazy)


def test_a_gbk_shapefile_without_its_cpg_is_read_as_gbk(tmp_path):
    """Chinese Shapefiles are mostly GBK; without the .cpg saying so GDAL read the columns as Latin-1
    ("Çø»®´úÂë" for 区划代码) and the load found no code column."""
    import geopandas as gpd
    import shapely

    from geodata.areas import _read_any

    layer = gpd.GeoDataFrame({"区划代码": ["441502001"], "名称": ["新港街道"]},
                             geometry=[shapely.box(115.3, 22.7, 115.4, 22.8)], crs="EPSG:4326")
    layer.to_file(tmp_path / "towns.shp", encoding="gbk")
    (tmp_path / "towns.cpg").unlink(missing_ok=True)
    read = _read_any(tmp_path / "towns.shp")
    assert list(read.columns[:2]) == ["区划代码", "名称"] and read.iloc[0]["名称"] == "新港街道"
