"""geodata.validate: geometry repair, overlaps, gaps, codes; and load_area_set's declared CRS and columns."""
from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geodata.areas import DEMO_DIR, AreaSet, demo_area_set, load_area_set
from geodata.crs import wgs84_to_gcj02
from geodata.validate import (
    BAD_CODE,
    CODE_PARENT_MISMATCH,
    DUPLICATE_CODE,
    EMPTY_GEOMETRY,
    GAP,
    INVALID_REPAIRED,
    INVALID_UNREPAIRABLE,
    OUTSIDE_PARENT,
    OVERLAP,
    local_equal_area_crs,
    repair_area_set,
    repair_geometries,
    validate_area_set,
)

# a toy county 441502 near 汕尾: 2 towns (west/east) × 2 villages (south/north) × 2 grids (west/east)
X0, Y0, W, H = 115.30, 22.70, 0.04, 0.04


def _layer(rows, level):
    codes = [r[0] for r in rows]
    parents = [r[2] if len(r) > 2 else (c[: {"town": 6, "village": 9, "grid": 12}[level]] if level != "county"
                                        else "441500") for r, c in zip(rows, codes, strict=True)]
    return gpd.GeoDataFrame({"code": codes, "name": [f"{level}{c}" for c in codes], "level": level,
                             "parent_code": parents}, geometry=[r[1] for r in rows], crs="EPSG:4326")


def toy(grids_override: dict | None = None, extra_grids=(), villages_override: dict | None = None,
        extra_villages=()) -> AreaSet:
    county = [("441502", shapely.box(X0, Y0, X0 + W, Y0 + H))]
    towns, villages, grids = [], [], []
    for t in range(2):
        tx = X0 + t * W / 2
        tcode = f"441502{t + 1:03d}"
        towns.append((tcode, shapely.box(tx, Y0, tx + W / 2, Y0 + H)))
        for v in range(2):
            vy = Y0 + v * H / 2
            vcode = f"{tcode}{v + 1:03d}"
            villages.append((vcode, shapely.box(tx, vy, tx + W / 2, vy + H / 2)))
            for g in range(2):
                gx = tx + g * W / 4
                grids.append((f"{vcode}{g + 1:03d}", shapely.box(gx, vy, gx + W / 4, vy + H / 2)))
    grids = [(c, (grids_override or {}).get(c, geom)) for c, geom in grids] + list(extra_grids)
    villages = [(c, (villages_override or {}).get(c, geom)) for c, geom in villages] + list(extra_villages)
    return AreaSet(_layer(county, "county"), _layer(towns, "town"), _layer(villages, "village"),
                   _layer(grids, "grid"), "2023", "toy")


def m2(area_set, geom) -> float:
    return gpd.GeoSeries([geom], crs="EPSG:4326").to_crs(local_equal_area_crs(area_set)).area.iloc[0]


def test_clean_toy_and_bundled_demo_have_no_issues():
    r = validate_area_set(toy(), county_code="441502")
    assert r.ok and r.issues == [] and "no problems found" in r.summary()
    assert r.counts == {"county": 1, "town": 2, "village": 4, "grid": 8}
    demo = validate_area_set(load_area_set(DEMO_DIR, raw=True), county_code="441502")
    assert demo.issues == [], demo.summary()


def test_overlap_between_siblings_with_area():
    # grid 001 of village 441502001001 reaches 0.002° into its sibling 002
    a = shapely.box(X0, Y0, X0 + W / 4 + 0.002, Y0 + H / 2)
    r = validate_area_set(toy({"441502001001001": a}))
    [ov] = r.of_kind(OVERLAP)
    assert (ov.level, ov.code, ov.other_code) == ("grid", "441502001001001", "441502001001002")
    expected = m2(toy(), shapely.box(X0 + W / 4, Y0, X0 + W / 4 + 0.002, Y0 + H / 2))
    assert ov.area_m2 == pytest.approx(expected, rel=1e-3)
    assert 0.44e6 < ov.area_m2 < 0.47e6  # ~205 m × 2,220 m
    assert not r.ok and r.of_kind(GAP) == [] and r.of_kind(OUTSIDE_PARENT) == []


def test_overlap_below_tolerance_is_ignored():
    a = shapely.box(X0, Y0, X0 + W / 4 + 0.0001, Y0 + H / 2)  # ~10 m × 2.2 km ≈ 22,000 m²
    assert validate_area_set(toy({"441502001001001": a})).of_kind(OVERLAP)
    assert not validate_area_set(toy({"441502001001001": a}), overlap_tolerance_m2=30_000).of_kind(OVERLAP)


def test_strips_under_a_metre_wide_are_slivers_a_warning_not_an_error():
    """Layers from different agencies or projections differ by centimetres to a metre along their boundaries:
    a 0.1 m overlap, gap or strip outside the parent over kilometres is a sliver (warning), so a strict load of
    such files is not refused for hundreds of sub-metre 'errors'; 10 m is still an error."""
    from geodata.validate import SLIVER

    thin = 1e-6  # ≈ 0.1 m
    over = validate_area_set(toy({"441502001001001": shapely.box(X0, Y0, X0 + W / 4 + thin, Y0 + H / 2)}))
    gap = validate_area_set(toy({"441502001001002": shapely.box(X0 + W / 4 + thin, Y0, X0 + W / 2, Y0 + H / 2)}))
    outside = validate_area_set(toy({"441502001001001": shapely.box(X0 - thin, Y0, X0 + W / 4, Y0 + H / 2)}))
    for report, named in ((over, "441502001001001"), (gap, "441502001001"), (outside, "441502001001001")):
        assert report.ok and not report.errors, report.summary()
        [sliver] = report.of_kind(SLIVER)
        assert sliver.code == named and "widest 0.1" in sliver.detail and not sliver.is_error


def test_gap_inside_a_village_with_area():
    b = shapely.box(X0 + W / 4 + 0.003, Y0, X0 + W / 2, Y0 + H / 2)  # grid 002 leaves a 0.003° strip
    r = validate_area_set(toy({"441502001001002": b}))
    [gap] = r.of_kind(GAP)
    assert (gap.level, gap.code) == ("grid", "441502001001")  # children's level, parent's code
    expected = m2(toy(), shapely.box(X0 + W / 4, Y0, X0 + W / 4 + 0.003, Y0 + H / 2))
    assert gap.area_m2 == pytest.approx(expected, rel=1e-3)
    assert "lng=115.3" in gap.detail
    assert "- village 441502001001: " in r.summary() and "grid 441502001001:" not in r.summary()  # named as the parent
    assert not validate_area_set(toy({"441502001001002": b}), expect_tiling=("towns", "villages")).of_kind(GAP)


def test_parent_without_children_is_a_gap():
    grids = toy().grids
    r = validate_area_set(AreaSet(*(getattr(toy(), k) for k in ("county", "towns", "villages")),
                                  grids[~grids["parent_code"].eq("441502002002")].reset_index(drop=True), "2023"))
    [gap] = r.of_kind(GAP)
    assert gap.code == "441502002002" and "has no grids" in gap.detail


def test_outside_parent():
    # grid 002 of village 441502001001 also covers the north village's southern strip
    b = shapely.box(X0 + W / 4, Y0, X0 + W / 2, Y0 + H / 2 + 0.001)
    r = validate_area_set(toy({"441502001001002": b}))
    [out] = r.of_kind(OUTSIDE_PARENT)
    assert out.code == "441502001001002" and out.area_m2 == pytest.approx(
        m2(toy(), shapely.box(X0 + W / 4, Y0 + H / 2, X0 + W / 2, Y0 + H / 2 + 0.001)), rel=1e-3)
    assert r.of_kind(OVERLAP) == []  # the grid it overlaps is a cousin, not a sibling


def test_bad_codes():
    g = shapely.box(X0, Y0, X0 + 0.001, Y0 + 0.001)
    r = validate_area_set(toy(extra_grids=[
        ("441502001002007", g, "441502001001"),   # 15 digits, but under another village than its prefix says
        ("44150200100100", g, "441502001001"),    # 14 digits
        ("44150200100100X", g, "441502001001"),   # not digits
        ("441502001009001", g),                  # its village 441502001009 does not exist
    ], extra_villages=[("441503001001", shapely.box(X0, Y0, X0 + 0.001, Y0 + 0.001), "441503001")]),
        county_code="441502", gap_tolerance_m2=1e12, overlap_tolerance_m2=1e12, outside_tolerance_m2=1e12)
    mism = {i.code: i.detail for i in r.of_kind(CODE_PARENT_MISMATCH)}
    assert "does not start with its parent" in mism["441502001002007"]
    assert "not in the villages layer" in mism["441502001009001"]
    assert "not in the towns layer" in mism["441503001001"]
    assert {i.code for i in r.of_kind(BAD_CODE)} == {"44150200100100", "44150200100100X"}
    assert not r.ok


def test_row_without_code_is_reported_and_left_out():
    a = toy(extra_grids=[(None, shapely.box(X0, Y0, X0 + 0.001, Y0 + 0.001), "441502001001")])
    r = validate_area_set(a, overlap_tolerance_m2=1e12)
    [i] = r.of_kind(BAD_CODE)
    assert i.code is None and "without a code" in i.detail
    assert len(repair_area_set(a).grids) == 8


def test_configured_county_differs():
    r = validate_area_set(toy(), county_code="222401")
    [i] = r.issues
    assert i.kind == CODE_PARENT_MISMATCH and i.level == "county" and "222401" in i.detail


def test_duplicate_codes_are_reported_and_merged():
    extra = shapely.box(X0 + 0.0005, Y0 + 0.0005, X0 + 0.001, Y0 + 0.001)  # inside 441502001001001
    a = toy(extra_grids=[("441502001001001", extra)])
    r = validate_area_set(a)
    [d] = r.of_kind(DUPLICATE_CODE)
    assert d.code == "441502001001001" and "2 rows" in d.detail
    fixed = repair_area_set(a)
    assert fixed.grids["code"].is_unique and len(fixed.grids) == 8


def test_bow_tie_is_repaired_and_only_a_warning():
    # the grid's outline crosses itself: a bow-tie over the same box (its "area" is 0 as drawn)
    x1, x2, y1, y2 = X0 + W / 4, X0 + W / 2, Y0, Y0 + H / 2
    bow = shapely.Polygon([(x1, y1), (x2, y2), (x2, y1), (x1, y2), (x1, y1)])
    assert not bow.is_valid
    a = toy({"441502001001002": bow})
    r = validate_area_set(a, gap_tolerance_m2=1e12)
    [i] = r.issues
    assert i.kind == INVALID_REPAIRED and "Self-intersection" in i.detail and not i.is_error
    assert r.ok and "safe to load" in r.summary()
    fixed = repair_area_set(a).grids.set_index("code").geometry["441502001001002"]
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon" and fixed.area == pytest.approx(W / 4 * H / 4)


def test_unrepairable_and_empty():
    flat = shapely.Polygon([(X0, Y0), (X0 + 0.01, Y0), (X0 + 0.02, Y0), (X0, Y0)])  # collapsed to a line
    a = toy({"441502001001001": flat, "441502001001002": shapely.Polygon()})
    r = validate_area_set(a, gap_tolerance_m2=1e12)
    assert [i.code for i in r.of_kind(INVALID_UNREPAIRABLE)] == ["441502001001001"]
    assert [i.code for i in r.of_kind(EMPTY_GEOMETRY)] == ["441502001001002"]
    fixed = repair_area_set(a).grids
    assert fixed.geometry.is_valid.all() and fixed.geom_type.isin(["Polygon", "MultiPolygon"]).all()


def test_repair_geometries_keeps_polygonal_parts_only():
    poly_and_line = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(2, 2), (3, 3)])])
    bow = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    good = shapely.box(5, 5, 6, 6)
    out = repair_geometries(gpd.GeoDataFrame({"code": ["a", "b", "c", "d"]},
                                             geometry=[poly_and_line, bow, good, None], crs="EPSG:4326"))
    assert list(out.geom_type[:3]) == ["Polygon", "MultiPolygon", "Polygon"]
    assert out.geometry.iloc[2] is good or out.geometry.iloc[2].equals(good)
    assert out.geometry.iloc[3] is None


def test_summary_lists_kinds_and_worst_first():
    a = shapely.box(X0, Y0, X0 + W / 4 + 0.002, Y0 + H / 2)
    text = validate_area_set(toy({"441502001001001": a}), county_code="222401").summary()
    assert "overlap (error): 1" in text and "code_parent_mismatch (error): 1" in text and "m²" in text


def test_three_thousand_grids_validate_in_seconds():
    # 10 towns × 10 villages × 30 grids over a 0.5° × 0.3° county, one overlap and one gap planted
    nt, nv, ng = 10, 10, 30
    xs = X0 + np.arange(nt * ng + 1) * (0.5 / (nt * ng))
    ys = Y0 + np.arange(nv + 1) * (0.3 / nv)
    towns, villages, grids = [], [], []
    for t in range(nt):
        tcode = f"441502{t + 1:03d}"
        towns.append((tcode, shapely.box(xs[t * ng], ys[0], xs[(t + 1) * ng], ys[-1])))
        for v in range(nv):
            vcode = f"{tcode}{v + 1:03d}"
            villages.append((vcode, shapely.box(xs[t * ng], ys[v], xs[(t + 1) * ng], ys[v + 1])))
            boxes = shapely.box(xs[t * ng:(t + 1) * ng], ys[v], xs[t * ng + 1:(t + 1) * ng + 1], ys[v + 1])
            grids += [(f"{vcode}{g + 1:03d}", b) for g, b in enumerate(boxes)]
    grids[5] = (grids[5][0], shapely.buffer(grids[5][1], 1e-4, join_style="mitre"))  # overlaps both neighbours
    del grids[100]  # leaves a gap in its village
    county = [("441502", shapely.box(X0, Y0, X0 + 0.5, Y0 + 0.3))]
    a = AreaSet(_layer(county, "county"), _layer(towns, "town"), _layer(villages, "village"),
                _layer(grids, "grid"), "2023")
    assert len(a.grids) == 2999
    t0 = time.perf_counter()
    r = validate_area_set(a)
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0, elapsed
    assert len(r.of_kind(OVERLAP)) == 2 and len(r.of_kind(GAP)) == 1
    assert {i.code for i in r.of_kind(OUTSIDE_PARENT)} == {grids[5][0]}


# ------------------------------------------------------------------------------------- loading options

def test_load_raw_keeps_problems_default_repairs(tmp_path):
    a = toy({"441502001001002": shapely.Polygon([(X0 + W / 4, Y0), (X0 + W / 2, Y0 + H / 2), (X0 + W / 2, Y0),
                                                 (X0 + W / 4, Y0 + H / 2), (X0 + W / 4, Y0)])})
    for key in ("towns", "villages", "grids"):
        getattr(a, key)[["code", "name", "geometry"]].to_file(tmp_path / f"{key}.geojson", driver="GeoJSON")
    raw = load_area_set(tmp_path, "2024", raw=True)
    assert not raw.grids.geometry.is_valid.all()
    assert validate_area_set(raw).by_kind()[INVALID_REPAIRED] == 1
    fixed = load_area_set(tmp_path, "2024")
    assert fixed.grids.geometry.is_valid.all() and fixed.vintage == "2024"


@pytest.mark.parametrize("crs", ["EPSG:4545", "gcj02"])
def test_an_invalid_ring_in_a_projected_or_gcj02_file_is_reported_too(tmp_path, crs):
    """Reprojection densifies the edges first; GEOS's densify makes a bow-tie valid by dropping a lobe, so a
    Gauss-Krüger or GCJ-02 file's bad grid went unreported (only the knock-on overlap and gap)."""
    from geodata.crs import wgs84_to_gcj02

    a = toy({"441502001001002": shapely.Polygon([(X0 + W / 4, Y0), (X0 + W / 2, Y0 + H / 2), (X0 + W / 2, Y0),
                                                 (X0 + W / 4, Y0 + H / 2), (X0 + W / 4, Y0)])})
    for key in ("towns", "villages", "grids"):
        layer = getattr(a, key)[["code", "name", "geometry"]]
        if crs == "gcj02":
            layer = layer.assign(geometry=shapely.transform(layer.geometry.values, lambda xy: np.column_stack(
                wgs84_to_gcj02(xy[:, 0], xy[:, 1]))))
        else:
            layer = layer.to_crs(crs)
        layer.to_file(tmp_path / f"{key}.gpkg", driver="GPKG")
    raw = load_area_set(tmp_path, "2024", declared_crs="gcj02" if crs == "gcj02" else None, raw=True)
    report = validate_area_set(raw)
    [bad] = report.of_kind(INVALID_REPAIRED)
    assert bad.code == "441502001001002"


def test_declared_gcj02(tmp_path):
    """Boundaries traced on a web map: GCJ-02 lon/lat, labelled WGS84 in the file."""
    demo = demo_area_set()

    def to_gcj(xy):
        return np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))

    for key in ("towns", "villages", "grids"):
        g = getattr(demo, key)[["code", "name", "geometry"]].copy()
        g["geometry"] = shapely.transform(g.geometry.values, to_gcj)
        g.to_file(tmp_path / f"{key}.geojson", driver="GeoJSON")
    shifted = load_area_set(tmp_path)
    fixed = load_area_set(tmp_path, declared_crs="gcj02")
    ref = demo.towns.geometry.values
    off = shapely.hausdorff_distance(shifted.towns.geometry.values, ref).max()
    err = shapely.hausdorff_distance(fixed.towns.geometry.values, ref).max()
    assert off > 2e-3  # hundreds of metres off when taken at its label
    # edges are followed as drawn in GCJ-02 (split before conversion), so a long edge that was straight in
    # WGS84 bows by well under a metre; every original vertex comes back to sub-centimetre
    assert err < 5e-6

    def vertex_error(loaded, original):
        pts = shapely.points(shapely.get_coordinates(original.geometry.values))
        return shapely.distance(pts, shapely.union_all(loaded.geometry.boundary.values)).max()

    assert vertex_error(fixed.towns, demo.towns) < 1e-7
    assert validate_area_set(load_area_set(tmp_path, declared_crs="gcj02", raw=True)).issues == []
    (tmp_path / "areas.toml").write_text('crs = "GCJ-02"\nvintage = "2022"\n', encoding="utf-8")
    by_manifest = load_area_set(tmp_path)
    assert by_manifest.vintage == "2022"
    assert vertex_error(by_manifest.villages, demo.villages) < 1e-7


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_declared_projected_crs_for_a_file_without_one(tmp_path):
    demo = demo_area_set()
    for key in ("towns", "villages", "grids"):
        g = getattr(demo, key)[["code", "name", "geometry"]].to_crs("EPSG:4547").set_crs(None, allow_override=True)
        g.to_file(tmp_path / f"{key}.shp", encoding="utf-8")
    assert not (tmp_path / "towns.prj").exists()
    with pytest.raises(ValueError, match="no CRS"):
        load_area_set(tmp_path)
    loaded = load_area_set(tmp_path, "2023", declared_crs="EPSG:4547")
    assert shapely.hausdorff_distance(loaded.towns.geometry.values, demo.towns.geometry.values).max() < 1e-6


def test_code_and_name_columns_by_argument_and_manifest(tmp_path):
    demo = demo_area_set()
    for key, (c, n) in {"towns": ("XZDM", "XZMC"), "villages": ("CJDM", "CJMC"), "grids": ("WGBM", "WGMC")}.items():
        g = getattr(demo, key)[["code", "name", "geometry"]].rename(columns={"code": c, "name": n})
        g["code"] = "ignored"  # a conventional column name that must lose to the configured one
        g.to_file(tmp_path / f"{key}.gpkg", driver="GPKG")
    cols = {"towns": "XZDM", "village": "CJDM", "grids": "WGBM"}
    names = {"towns": "XZMC", "villages": "CJMC", "grid": "WGMC"}
    loaded = load_area_set(tmp_path, "2023", code_column=cols, name_column=names)
    assert list(loaded.grids["code"]) == list(demo.grids["code"])
    assert list(loaded.villages["name"]) == list(demo.villages["name"])
    (tmp_path / "areas.toml").write_text(
        'vintage = "2023"\n[code_column]\ntowns = "XZDM"\nvillages = "CJDM"\ngrids = "WGBM"\n'
        '[name_column]\ntowns = "XZMC"\nvillages = "CJMC"\ngrids = "WGMC"\n', encoding="utf-8")
    by_manifest = load_area_set(tmp_path)
    assert list(by_manifest.towns["name"]) == list(demo.towns["name"])
    with pytest.raises(ValueError, match="configured code column 'NOPE'"):
        load_area_set(tmp_path, code_column="NOPE")
    (tmp_path / "areas.toml").write_text('vintge = "2023"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown keys"):
        load_area_set(tmp_path)


def test_folder_with_one_geopackage(tmp_path):
    demo = demo_area_set()
    for key in ("towns", "villages", "grids"):
        getattr(demo, key)[["code", "name", "geometry"]].to_file(tmp_path / "boundaries.gpkg", layer=key,
                                                                 driver="GPKG")
    loaded = load_area_set(tmp_path, "2023")
    assert len(loaded.grids) == len(demo.grids) and loaded.county_code == "441502"


def test_a_crs_declared_per_layer_in_the_manifest(tmp_path):
    """Towns from the civil-affairs bureau in CGCS2000 Gauss-Krüger (labelled), grids traced on a web map in
    GCJ-02 (labelled WGS84): areas.toml declares the grids' CRS only, and the set loads clean."""
    demo = demo_area_set()
    demo.towns[["code", "name", "geometry"]].to_crs("EPSG:4545").to_file(tmp_path / "towns.gpkg", driver="GPKG")
    demo.villages[["code", "name", "geometry"]].to_file(tmp_path / "villages.geojson", driver="GeoJSON")
    grids = demo.grids[["code", "name", "geometry"]].copy()
    grids["geometry"] = shapely.transform(grids.geometry.values,
                                          lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    grids.to_file(tmp_path / "grids.geojson", driver="GeoJSON")
    assert validate_area_set(load_area_set(tmp_path, "2024", raw=True)).errors  # the grids hundreds of metres off
    (tmp_path / "areas.toml").write_text('vintage = "2024"\n[crs]\ngrids = "gcj02"\n', encoding="utf-8")
    loaded = load_area_set(tmp_path, raw=True)
    report = validate_area_set(loaded)
    assert not report.errors, report.summary()
    assert shapely.hausdorff_distance(loaded.grids.geometry.values, demo.grids.geometry.values).max() < 1e-5


def test_a_county_outline_from_another_source_is_named_as_such():
    """The county left uncovered by its towns in many scraps along its edge (a DataV county against the
    civil-affairs towns): the gap says the two seem to come from different sources, and how to avoid it; one
    missing piece does not."""
    import dataclasses

    from geodata.validate import SCRAPS

    a = toy()
    bumps = [shapely.box(X0 + i * W / 40, Y0 + H, X0 + i * W / 40 + W / 100, Y0 + H + 0.0005) for i in range(30)]
    scrappy = shapely.union_all([a.county.geometry.iloc[0], *bumps])
    a = dataclasses.replace(a, county=a.county.set_geometry([scrappy], crs="EPSG:4326"))
    [gap] = [i for i in validate_area_set(a).of_kind(GAP) if i.level == "town"]
    assert int(gap.detail.split("(")[1].split()[0]) >= SCRAPS and "come from different sources" in gap.detail
    b = toy()
    b = dataclasses.replace(b, county=b.county.set_geometry([shapely.union_all([b.county.geometry.iloc[0], bumps[0]])],
                                                           crs="EPSG:4326"))
    [gap] = [i for i in validate_area_set(b).of_kind(GAP) if i.level == "town"]
    assert "different sources" not in gap.detail
