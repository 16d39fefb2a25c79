"""pipelines.areas_load: vintages side by side (村居合并), strict refusal, the command's output and exit codes."""
from __future__ import annotations

import duckdb
import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geodata.areas import demo_area_set
from onemap.settings import load_settings
from pipelines.areas_load import GeographyRejected, geodata_load_main, load_geography, read_area_set, vintages


def write_layers(folder, towns, villages, grids):
    folder.mkdir(parents=True, exist_ok=True)
    for key, gdf in (("towns", towns), ("villages", villages), ("grids", grids)):
        cols = [c for c in ("code", "name", "synthetic") if c in gdf.columns]
        gdf[[*cols, "geometry"]].to_file(folder / f"{key}.geojson", driver="GeoJSON")
    return folder


def merged_2024(demo):
    """村居合并: the first two villages of 红草镇 become one; the absorbed village's grids are renumbered."""
    v = demo.villages
    keep, gone = v[v["parent_code"] == "441502100"]["code"].iloc[:2]
    villages = v[v["code"] != gone].copy()
    sel = villages["code"] == keep
    villages.loc[sel, "geometry"] = shapely.union_all(v[v["code"].isin([keep, gone])].geometry.values)
    grids = demo.grids.copy()
    start = int(grids.loc[grids["parent_code"] == keep, "code"].str[12:].astype(int).max())
    moved = grids["parent_code"] == gone
    grids.loc[moved, "code"] = [f"{keep}{start + i:03d}" for i in range(1, moved.sum() + 1)]
    return villages, grids, keep, gone


@pytest.fixture()
def settings(tmp_path):
    return load_settings(environ={"ONEMAP_HOME": str(tmp_path / "home")}, local_file=tmp_path / "none.toml")


def _con(settings):
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def test_a_new_vintage_keeps_the_old_one(settings, tmp_path):
    demo = demo_area_set()
    d2023 = write_layers(tmp_path / "b2023", demo.towns, demo.villages, demo.grids)
    villages, grids, keep, gone = merged_2024(demo)
    d2024 = write_layers(tmp_path / "b2024", demo.towns, villages, grids)

    _, r23 = load_geography(settings, d2023, "2023")
    _, r24 = load_geography(settings, d2024, "2024")
    assert r23.ok and r24.ok, r24.summary()
    with _con(settings) as con:
        counts = dict(con.execute("SELECT vintage, count(*) FROM core.areas GROUP BY vintage").fetchall())
        assert counts == {"2023": 1 + 10 + 103 + 900, "2024": 1 + 10 + 102 + 900}
        assert con.execute("SELECT vintage FROM core.areas WHERE code = ? ORDER BY vintage", [gone]).fetchall() == [
            ("2023",)]
        old = read_area_set(con, "2023")
        new = read_area_set(con)  # the latest load
        assert new.vintage == "2024" and gone in set(old.villages["code"]) and gone not in set(new.villages["code"])
        assert (new.villages.set_index("code").geometry[keep].area
                > old.villages.set_index("code").geometry[keep].area)
        assert con.execute("SELECT count(*) FROM meta.area_vintages").fetchall() == [(2,)]

    # reloading 2023 replaces 2023 only
    load_geography(settings, d2023, "2023")
    with _con(settings) as con:
        counts = dict(con.execute("SELECT vintage, count(*) FROM core.areas GROUP BY vintage").fetchall())
        assert counts == {"2023": 1014, "2024": 1013}
        assert con.execute("SELECT count(*) FROM meta.area_vintages").fetchall() == [(2,)]
    assert list(vintages(settings)["vintage"]) == ["2023", "2024"]  # newest load first
    assert (vintages(settings)["errors"] == 0).all()


def overlapping_layers(demo):
    g = demo.grids.copy()
    g.loc[0, "geometry"] = g.geometry.iloc[0].buffer(0.001)  # overlaps its siblings and leaves its village
    return g


def test_strict_refuses_and_writes_nothing(settings, tmp_path):
    demo = demo_area_set()
    folder = write_layers(tmp_path / "bad", demo.towns, demo.villages, overlapping_layers(demo))
    with pytest.raises(GeographyRejected) as exc:
        load_geography(settings, folder, "2025", strict=True)
    assert exc.value.report.of_kind("overlap") and exc.value.report.of_kind("outside_parent")
    assert not settings.warehouse_path.exists()
    # without --strict it loads, and the issues are counted
    _, report = load_geography(settings, folder, "2025")
    with _con(settings) as con:
        [(issues, errors)] = con.execute("SELECT issues, errors FROM meta.area_vintages").fetchall()
    assert errors == len(report.errors) > 0 and issues >= errors


def spiked(poly):
    """The same polygon drawn with a zero-width spike out of its first vertex: invalid, repairs to itself."""
    ring = list(poly.exterior.coords)
    x, y = ring[0]
    return shapely.Polygon([(x, y), (x + 0.002, y + 0.002), *ring])


def test_strict_accepts_repaired_geometry_and_duplicates_are_merged(settings, tmp_path):
    demo = demo_area_set()
    g = demo.grids
    # grid 5 again, as a second row with the same code: a duplicate (merged on load, refused by --strict)
    g2 = gpd.GeoDataFrame(pd.concat([g, g.iloc[[5]]], ignore_index=True), crs="EPSG:4326")
    folder = write_layers(tmp_path / "dup", demo.towns, demo.villages, g2)
    with pytest.raises(GeographyRejected, match="duplicate_code"):
        load_geography(settings, folder, "2025", strict=True)
    areas, report = load_geography(settings, folder, "2025")
    assert [i.kind for i in report.issues] == ["duplicate_code"]
    assert areas.grids["code"].is_unique and len(areas.grids) == 900

    # a self-intersecting ring that repairs to the right shape does not stop a strict load
    g3 = g.copy()
    g3.loc[5, "geometry"] = spiked(g.geometry.iloc[5])
    assert not g3.geometry.iloc[5].is_valid
    folder = write_layers(tmp_path / "spike", demo.towns, demo.villages, g3)
    areas, report = load_geography(settings, folder, "2026", strict=True)
    assert report.ok and [i.kind for i in report.issues] == ["invalid_geometry_repaired"]
    assert "Self-intersection" in report.issues[0].detail
    assert areas.grids.geometry.iloc[5].equals(g.geometry.iloc[5])


def test_main_prints_summary_and_exit_codes(settings, tmp_path, capsys):
    demo = demo_area_set()
    good = write_layers(tmp_path / "good", demo.towns, demo.villages, demo.grids)
    assert geodata_load_main(settings, good, "2023", None, False) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "loaded vintage 2023" in out and "grids 900" in out
    bad = write_layers(tmp_path / "bad", demo.towns, demo.villages, overlapping_layers(demo))
    assert geodata_load_main(settings, bad, "2024", None, True) == 1
    captured = capsys.readouterr()
    assert "overlap (error)" in captured.out and "--strict" in captured.err
    assert geodata_load_main(settings, tmp_path / "missing", "2024", None, False) == 2
    assert "geodata load:" in capsys.readouterr().err
    assert geodata_load_main(settings, good, None, None, False) == 2  # these files do not say their vintage
    assert "--vintage" in capsys.readouterr().err


def test_an_older_vintage_loaded_later_is_kept_for_the_record_with_history(settings, tmp_path, capsys):
    """Loading 2022 after 2024 made 2022 the boundaries in use (a merged village came back): the command warns
    and says which is in use; --history stores it for the record only; `geodata list` shows which is in use."""
    from onemap.cli import main

    demo = demo_area_set()
    villages, grids, keep, gone = merged_2024(demo)
    d2024 = write_layers(tmp_path / "b2024", demo.towns, villages, grids)
    d2022 = write_layers(tmp_path / "b2022", demo.towns, demo.villages, demo.grids)
    home = ["--home", str(settings.home)]
    assert geodata_load_main(settings, d2022, "2022", history=True) == 2  # nothing in use yet to keep
    assert "none are loaded yet" in capsys.readouterr().err
    assert main([*home, "geodata", "load", str(d2024), "--vintage", "2024"]) == 0
    capsys.readouterr()
    assert main([*home, "geodata", "load", str(d2022), "--vintage", "2022", "--history"]) == 0
    out = capsys.readouterr()
    assert "boundaries in use: vintage 2024 (kept for the record: 2022)" in out.out and "WARNING" not in out.err
    with _con(settings) as con:
        assert read_area_set(con).vintage == "2024" and gone not in set(read_area_set(con).villages["code"])
    assert main([*home, "geodata", "list", "--format", "json"]) == 0
    listed = {r["vintage"]: r["current"] for r in __import__("json").loads(capsys.readouterr().out)}
    assert listed == {"2024": True, "2022": False}
    # without --history the last load is in use, and the command says a later vintage was set aside
    assert main([*home, "geodata", "load", str(d2022), "--vintage", "2022"]) == 0
    out = capsys.readouterr()
    assert "boundaries in use: vintage 2022" in out.out and "WARNING: vintage 2022 is now in use though 2024" in out.err
