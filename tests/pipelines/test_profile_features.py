"""The generic profile features the real-data profiles use, on small synthetic exports (no ../shared needed):
[values.*] maps, [status] closed_at_from, [record_id] row_hash, [times] formats/date_only, the profile's
timezone, [place] grid_match, [categories] unmapped, and the validation of profile files."""
import json

import pandas as pd
import pytest

from pipelines import stage as S
from pipelines.mappings import CategoryMap
from pipelines.profiles import ProfileError, load_profile

NOW = pd.Timestamp("2026-11-20 12:00", tz="Asia/Shanghai")

BASE = """
[profile]
name = "t"
source = "police"
category_system = "police_110"
crs = "wgs84"
{profile_extra}

[columns]
source_record_id = ["id"]
reported_at = ["time"]
category_raw_code = ["code"]
address = ["addr"]
lng = ["lon"]
lat = ["lat"]
status = ["status"]
grid_code = ["beat"]

[required]
fields = ["reported_at", "category_raw_code"]
"""


@pytest.fixture(scope="module")
def inside(areas):
    p = areas.grids.geometry.iloc[100].representative_point()
    return f"{p.x:.6f}", f"{p.y:.6f}"


def profile(tmp_path, extra: str = "", profile_extra: str = ""):
    path = tmp_path / "t.toml"
    path.write_text(BASE.format(profile_extra=profile_extra) + extra, encoding="utf-8")
    return load_profile(str(path))


def stage(rows, prof, areas):
    raw = pd.DataFrame(rows, dtype=object).replace({"": None})
    raw.insert(0, "__row", range(1, len(raw) + 1))
    ctx = S.StageContext(areas=areas, categories=CategoryMap.load(), hmac_key=b"k" * 32, batch_id="b",
                         source_file="t.csv", now=NOW)
    return S.stage_export(raw, prof, ctx)


def row(inside, **over):
    r = {"id": "A1", "time": "2026-11-01 10:00:00", "code": "200201", "addr": "", "lon": inside[0], "lat": inside[1],
         "status": "", "beat": ""}
    r.update(over)
    return r


def test_status_values_and_closed_at_rule(tmp_path, areas, inside):
    prof = profile(tmp_path, """
[values.status]
"Advised" = "已办结"
"Service in Progress" = "分类流转"
[status]
closed_at_from = ["reported_at", "arrived"]
""")
    rows = [row(inside, id="A1", status="advised ", arrived="2026-11-01 11:30:00"),
            row(inside, id="A2", status="Advised", arrived=""),
            row(inside, id="A3", status="Service in Progress", arrived="2026-11-01 11:00:00"),
            row(inside, id="A4", status="Flew away", arrived="")]
    staged = stage(rows, prof, areas)
    ev = staged.events.set_index("source_record_id")
    assert ev.loc["A1", "status"] == "已办结" and ev.loc["A1", "closed_at"] == pd.Timestamp("2026-11-01 11:30", tz="Asia/Shanghai")
    assert ev.loc["A2", "closed_at"] == ev.loc["A2", "reported_at"]  # the latest time the row has
    assert ev.loc["A3", "status"] == "分类流转" and pd.isna(ev.loc["A3", "closed_at"])
    ext = {k: json.loads(v) for k, v in ev["ext"].items()}
    assert ext["A1"]["status"] == "advised " and "closed_at_rule" in ext["A1"]  # raw disposition kept
    assert "closed_at_rule" not in ext["A3"]
    [rej] = staged.rejects.to_dict("records")
    assert rej["reason"] == S.UNKNOWN_STATUS and rej["source_row"] == 4


def test_row_hash_ids_keep_repeated_rows_and_are_stable(tmp_path, areas, inside):
    prof = profile(tmp_path, '[record_id]\nfrom = "row_hash"\n')
    rows = [row(inside, id=None), row(inside, id=None), row(inside, id=None, code="200202")]
    for r in rows:
        del r["id"]
    first = stage(rows, prof, areas).events
    assert len(first) == 3 and first["event_id"].is_unique
    ids = first["source_record_id"].tolist()
    assert ids[0].endswith("-1") and ids[1].endswith("-2") and ids[0][:16] == ids[1][:16] != ids[2][:16]
    # the same rows again, columns in another order and with padding: the same ids
    again = [{k: (f" {v} " if isinstance(v, str) and v else v) for k, v in reversed(list(r.items()))} for r in rows]
    assert stage(again, prof, areas).events["source_record_id"].tolist() == ids


def test_date_only_times_in_the_profiles_timezone(tmp_path, areas, inside):
    prof = profile(tmp_path, '[times]\nformats = ["%m/%d/%y"]\ndate_only = ["reported_at"]\n',
                   profile_extra='timezone = "America/Los_Angeles"')
    staged = stage([row(inside, time="11/1/16"), row(inside, id="A2", time="2016-11-02 17:45:00")], prof, areas)
    ev = staged.events.set_index("source_record_id")
    assert ev.loc["A1", "reported_at"] == pd.Timestamp("2016-11-01 00:00", tz="America/Los_Angeles")
    assert ev.loc["A2", "reported_at"] == pd.Timestamp("2016-11-02 00:00", tz="America/Los_Angeles")
    assert str(ev["reported_at"].dt.tz) == "Asia/Shanghai"  # stored in the deployment's zone
    assert json.loads(ev.loc["A1", "ext"])["time_precision"] == "day"


def test_times_without_a_profile_timezone_are_the_deployments(tmp_path, areas, inside):
    staged = stage([row(inside)], profile(tmp_path), areas)
    assert staged.events["reported_at"].iloc[0] == pd.Timestamp("2026-11-01 10:00", tz="Asia/Shanghai")


def test_grid_code_may_be_a_grid_name(tmp_path, areas):
    g = areas.grids.iloc[7]
    rows = [row(("", ""), beat=f" {g['name']} "), row(("", ""), id="A2", beat="no such beat")]
    by_code = stage(rows, profile(tmp_path), areas)
    assert by_code.events.empty and set(by_code.rejects["reason"]) == {S.NO_LOCATION}
    by_name = stage(rows, profile(tmp_path, '[place]\ngrid_match = "code_or_name"\n'), areas)
    [e] = by_name.events.to_dict("records")
    assert (e["grid_code"], e["village_code"], e["geocode_method"], e["geocode_precision"]) == (
        g["code"], g["parent_code"], "grid-code", "grid")
    town = areas.villages.set_index("code").loc[g["parent_code"], "parent_code"]
    assert e["town_code"] == town and pd.isna(e["lng"])
    assert by_name.rejects["reason"].tolist() == [S.NO_LOCATION]


def test_deliberately_unmapped_codes_are_reported(tmp_path, areas, inside):
    prof = profile(tmp_path, '[categories]\nunmapped = ["999001"]\n')
    staged = stage([row(inside, code="999001"), row(inside, id="A2", code="999001"), row(inside, id="A3", code="X")],
                   prof, areas)
    assert staged.events.empty and set(staged.rejects["reason"]) == {S.UNKNOWN_CATEGORY}
    assert staged.unmapped == {"999001": 2, "X": 1}
    detail = dict(zip(staged.rejects["source_row"], staged.rejects["detail"], strict=True))
    assert "有意不纳入" in detail[1] and "有意不纳入" not in detail[3]


@pytest.mark.parametrize("extra, message", [
    ('[values.status]\n"Done" = "finished"\n', "not product statuses"),
    ('[record_id]\nfrom = "uuid"\n', "record_id"),
    ('[place]\ngrid_match = "fuzzy"\n', "grid_match"),
    ('[times]\ndate_only = ["created"]\n', "date_only"),
    ('[extras]\nx = 1\n', "unknown table"),
])
def test_bad_profiles_are_refused(tmp_path, extra, message):
    with pytest.raises(ProfileError, match=message):
        profile(tmp_path, extra)


@pytest.mark.parametrize("typo, hint", [('summery = ["addr"]', "'summery' (did you mean 'summary'?)"),
                                        ('stauts = ["status"]', "'stauts' (did you mean 'status'?)")])
def test_a_misspelt_field_is_refused_with_the_field_meant(tmp_path, typo, hint):
    """A typo in [columns] would load every row with that field empty (a 'summery' wiped every summary on reload)."""
    path = tmp_path / "t.toml"
    path.write_text(BASE.format(profile_extra="").replace('grid_code = ["beat"]', f'grid_code = ["beat"]\n{typo}'),
                    encoding="utf-8")
    with pytest.raises(ProfileError, match="names no field of the product") as err:
        load_profile(str(path))
    assert hint in str(err.value)
    with pytest.raises(ProfileError, match=r"\[required\] fields names no field"):
        path.write_text(BASE.format(profile_extra="").replace('"reported_at", "category_raw_code"', '"reported"'),
                        encoding="utf-8")
        load_profile(str(path))


def test_unknown_timezone_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="timezone"):
        profile(tmp_path, profile_extra='timezone = "Mars/Olympus"')


def test_shipped_profiles_load():
    for name in ("portland_nij", "milwaukee_cfs", "slo_calllog", "nyc311", "demo_grid", "demo_police"):
        prof = load_profile(name)
        systems = set(CategoryMap.load().systems())
        assert prof.category_system in systems, name
        assert not set(prof.unmapped_codes) & set(
            CategoryMap.load().table.query("source_system == @prof.category_system")["source_code"]), name


def test_a_slash_date_the_profiles_formats_do_not_read_is_not_guessed(tmp_path, areas, inside):
    """A profile naming its formats (2026/11/05) speaks for those layouts: 03/11/2026 in such a file could be 3
    November or 11 March, and is quarantined saying so; 13/11/2026 can only be one day and loads."""
    prof = profile(tmp_path, '[times]\nformats = ["%Y/%m/%d %H:%M"]\n')
    staged = stage([row(inside, time="2026/11/05 10:00"), row(inside, id="A2", time="03/11/2026 10:20"),
                    row(inside, id="A3", time="13/11/2026 10:20")], prof, areas)
    [rej] = staged.rejects.to_dict("records")
    assert rej["source_row"] == 2 and rej["reason"] == S.BAD_TIME and "日/月顺序无法确定" in rej["detail"]
    got = staged.events.set_index("source_record_id")["reported_at"].dt.strftime("%m-%d")
    assert got.to_dict() == {"A1": "11-05", "A3": "11-13"}


def test_a_deployment_maps_its_own_sources_categories_beside_the_shipped_table(settings, tmp_path, inside):
    """A new source (a 12345 hotline's 诉求类型) is mapped in <home>/mappings/categories.csv, not by editing the
    installed package; a system with no rows at all is refused up front, and a wrong product code is named."""
    from pipelines.ingest import ingest

    prof = tmp_path / "hotline.toml"
    prof.write_text(BASE.format(profile_extra="").replace('source = "police"', 'source = "hotline"')
                    .replace('category_system = "police_110"', 'category_system = "sw12345"'), encoding="utf-8")
    export = tmp_path / "h.csv"
    pd.DataFrame([row(inside, code="噪声扰民"), row(inside, id="A2", code="物业管理"), row(inside, id="A3", code="其他")]
                 ).to_csv(export, index=False)
    with pytest.raises(ProfileError, match="'sw12345' has no rows in the category mapping"):
        ingest(settings, "hotline", [export], profile_name=str(prof), progress=False)
    mapping = settings.category_mapping_path
    mapping.parent.mkdir(parents=True)
    mapping.write_text("source_system,source_code,source_name,category_code\nsw12345,噪声扰民,,HJ\n"
                       "sw12345,物业管理,,MD06\npolice_110,200201,邻里纠纷,MD15\n", encoding="utf-8")
    [summary] = ingest(settings, "hotline", [export], profile_name=str(prof), progress=False)
    assert (summary.inserted, summary.quarantined, summary.unmapped) == (2, 1, {"其他": 1})
    from pipelines.mappings import CategoryMap

    both = CategoryMap.load(deployment=mapping)
    assert both.map("police_110", pd.Series(["200201", "200202"]))["category_code"].tolist() == ["MD15", "MD01"]
    mapping.write_text("source_system,source_code,category_code\nsw12345,噪声扰民,XX9\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"categories.csv, row 2: category_code 'XX9'"):
        CategoryMap.load(deployment=mapping)
    # a lower-case product code is the code (the brief read 'md' and stopped); a flag no one reads is refused;
    # one source code in two cases mapped two ways is refused
    mapping.write_text("source_system,source_code,category_code,flags\nsw12345,噪声扰民,md15,家庭暴力\n",
                       encoding="utf-8")
    row_ = CategoryMap.load(deployment=mapping).table.query("source_system == 'sw12345'").iloc[0]
    assert (row_["category_code"], row_["flags"]) == ("MD15", "domestic_violence")
    mapping.write_text("source_system,source_code,category_code,flags\nsw12345,噪声扰民,MD15,家暴\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 2: flag\(s\) \['家暴'\] are not product flags"):
        CategoryMap.load(deployment=mapping)
    mapping.write_text("source_system,source_code,category_code\nsw12345,A01,MD15\nsw12345,a01,MD02\n",
                       encoding="utf-8")
    with pytest.raises(ValueError, match=r"mapped twice \(whatever their case\): row 2 \('A01'\), row 3"):
        CategoryMap.load(deployment=mapping)


def test_an_address_without_a_point_is_placed_by_the_exports_own_town_not_a_road_named_after_another(tmp_path, areas,
                                                                                                 inside):
    """东涌路37号 is a road named after 东涌镇, not in it: without the export's town it is placed nowhere (not in
    东涌镇); with the export's own 所属街道 column (town_name) it is placed in that town."""
    path = tmp_path / "t.toml"
    path.write_text(BASE.format(profile_extra="").replace('grid_code = ["beat"]',
                                                          'grid_code = ["beat"]\ntown_name = ["所属街道"]'),
                    encoding="utf-8")
    prof = load_profile(str(path))
    rows = [row(inside, id="A1", addr="东涌路37号", lon="", lat="", 所属街道="凤山街道"),
            row(inside, id="A2", addr="红草大道85号", lon="", lat="", 所属街道=""),
            row(inside, id="A3", addr="东涌镇高港村工业大道237号", lon="", lat="", 所属街道="")]
    staged = stage(rows, prof, areas)
    towns = dict(zip(staged.events["source_record_id"], staged.events["town_code"], strict=True))
    fengshan = areas.towns.loc[areas.towns["name"] == "凤山街道", "code"].iloc[0]
    dongyong = areas.towns.loc[areas.towns["name"] == "东涌镇", "code"].iloc[0]
    assert towns["A1"] == fengshan and towns["A3"] == dongyong
    assert "A2" not in towns and staged.rejects["reason"].tolist() == [S.NO_LOCATION]
