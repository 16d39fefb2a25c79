"""Every quarantine reason, and the loader on malformed files: no crash, a clear error, nothing lost."""
import json

import pandas as pd
import pytest

from geodata.crs import wgs84_to_bd09, wgs84_to_gcj02
from pipelines import stage as S
from pipelines.mappings import CategoryMap
from pipelines.profiles import load_profile
from pipelines.readers import ReadError, read_export

NOW = pd.Timestamp("2026-11-20 12:00", tz="Asia/Shanghai")


@pytest.fixture(scope="module")
def inside(areas):
    p = areas.grids.geometry.iloc[100].representative_point()
    return p.x, p.y, str(areas.grids["code"].iloc[100])


def police_row(inside, **over):
    lng, lat, _ = inside
    row = {"接警单编号": "J1", "报警时间": "2026-11-01 10:00:00", "报警类别代码": "200201", "报警类别名称": "邻里纠纷",
           "报警内容": "王小明报称邻居漏水，电话13812345678", "案发地址": "新港街道某路1号", "经度": f"{lng:.6f}",
           "纬度": f"{lat:.6f}", "报警人姓名": "王小明", "报警电话": "13812345678", "管辖单位": "新港派出所",
           "接警单状态": "登记受理", "办理期限": "2026-11-10 10:00:00", "办结时间": "", "处置结果": "",
           "是否现场处结": "否"}
    row.update(over)
    return row


def stage(rows, areas, profile="demo_police"):
    raw = pd.DataFrame(rows, dtype=object).replace({"": None})
    raw.insert(0, "__row", range(1, len(raw) + 1))
    ctx = S.StageContext(areas=areas, categories=CategoryMap.load(), hmac_key=b"k" * 32, batch_id="b",
                         source_file="test.csv", now=NOW)
    return S.stage_export(raw, load_profile(profile), ctx)


def test_a_good_row_loads(areas, inside):
    staged = stage([police_row(inside)], areas)
    assert staged.rejects.empty and len(staged.events) == 1
    e = staged.events.iloc[0]
    assert e["geocode_method"] == "gps" and e["grid_code"] == inside[2]
    assert "13812345678" not in e["summary_redacted"]
    assert e["party_keys"] and all(len(k) == 32 for k in e["party_keys"])


@pytest.mark.parametrize("over, field, reason", [
    ({"接警单编号": ""}, "接警单编号", S.MISSING_REQUIRED),
    ({"报警时间": "昨天下午"}, "报警时间", S.BAD_TIME),
    ({"报警时间": "2031-01-01 00:00:00", "办理期限": "2031-02-01 00:00:00"}, "报警时间", S.TIME_IN_FUTURE),
    ({"接警单状态": "已办结", "办结时间": "2031-05-01 00:00:00", "处置结果": "化解"}, "办结时间", S.TIME_IN_FUTURE),
    ({"报警时间": "1999-05-01 08:00:00"}, "报警时间", S.TIME_BEFORE_2000),
    ({"接警单状态": "已办结", "办结时间": "2026-10-01 00:00:00"}, "办结时间", S.CLOSED_BEFORE_REPORTED),
    ({"接警单状态": "已办结", "办结时间": ""}, "办结时间", S.MISSING_REQUIRED),
    ({"报警类别代码": "299999"}, "报警类别代码", S.UNKNOWN_CATEGORY),
    ({"接警单状态": "飞走了"}, "接警单状态", S.UNKNOWN_STATUS),
    ({"是否现场处结": "也许"}, "是否现场处结", S.BAD_NUMBER),
    ({"办理层级": "网格"}, "办理层级", S.UNKNOWN_VALUE),
    ({"派单方式": "三派"}, "派单方式", S.UNKNOWN_VALUE),
    ({"经度": "abc", "案发地址": "某地"}, "经度", S.BAD_COORDINATE),
    ({"经度": "0", "纬度": "0", "案发地址": "某地"}, "经度", S.BAD_COORDINATE),
    ({"经度": "116.40", "纬度": "39.90", "案发地址": "北京某地"}, "经度", S.OUTSIDE_JURISDICTION),
    ({"经度": "", "纬度": "", "案发地址": "不知道在哪里"}, "案发地址", S.NO_LOCATION),
])
def test_each_reason(areas, inside, over, field, reason):
    staged = stage([police_row(inside, **over)], areas)
    assert staged.events.empty
    [rej] = staged.rejects.to_dict("records")
    assert (rej["reason"], rej["field"]) == (reason, field)
    assert rej["source_file"] == "test.csv" and rej["source_row"] == 1
    raw = json.loads(rej["raw"])
    assert "报警人姓名" not in raw and "报警电话" not in raw  # personal fields never reach the quarantine table
    # nor does the free text unredacted: the warehouse holds no raw name or phone number, quarantine included
    assert "13812345678" not in rej["raw"] and "王小明" not in rej["raw"] and "邻居漏水" in raw["报警内容"]


def test_the_quarantine_keeps_no_dropped_column_and_no_phone_in_a_malformed_line(areas, inside, settings, tmp_path):
    from pipelines.ingest import ingest

    from .warehouse import query_rows

    row = {"事件编号": "G1", "上报时间": "2026-11-01 10:00:00", "事件类型代码": "ZZ9", "经度": f"{inside[0]:.6f}",
           "纬度": f"{inside[1]:.6f}", "坐标系": "WGS84", "处理状态": "登记受理", "上报人工号": "WGY0001",
           "事件描述": "张三反映噪音，电话13912345678", "详细地址": "某路1号", "处置说明": "已联系业主13612345678"}
    staged = stage([row], areas, profile="demo_grid")
    [rej] = staged.rejects.to_dict("records")
    assert rej["reason"] == S.UNKNOWN_CATEGORY
    assert "上报人工号" not in json.loads(rej["raw"]) and "13912345678" not in rej["raw"]
    assert "13612345678" not in rej["raw"] and "已联系业主" in json.loads(rej["raw"])["处置说明"]  # a column no field maps
    # a line the reader could not split into the header's fields is kept as text, redacted
    text = HEADER + "J1,2026-11-01 10:00:00,200201,ok\nJ2,2026-11-01,200201,李四报称被打，电话13712345678,extra\n"
    [summary] = ingest(settings, "police", [_write(tmp_path, "ragged.csv", text.encode())], progress=False)
    assert summary.reconciles and summary.reasons.get(S.MALFORMED_ROW) == 1
    [(raw,)] = query_rows(settings, f"SELECT raw FROM staging.rejects WHERE reason = '{S.MALFORMED_ROW}'")
    assert "13712345678" not in raw and "李四" not in raw and "被打" in raw


def test_unsupported_crs_bd09mc(areas, inside):
    row = {"事件编号": "G1", "上报时间": "2026-11-01 10:00:00", "事件类型代码": "A02", "经度": "12843000",
           "纬度": "2590000", "坐标系": "BD09MC", "处理状态": "登记受理"}
    staged = stage([row], areas, profile="demo_grid")
    [rej] = staged.rejects.to_dict("records")
    assert rej["reason"] == S.UNSUPPORTED_CRS and "BD09MC" in rej["detail"]


@pytest.mark.parametrize("declared", ["BD09", "GCJ02", ""])
def test_bd09mc_metres_under_a_degree_crs_are_named_not_placed_by_address(areas, inside, declared):
    """A Baidu SDK's metres exported under a bd09 (or any degree) profile: quarantined as unsupported_crs naming
    BD09MC and the values, not taken for bad degrees and placed by the address as if nothing were wrong."""
    row = {"事件编号": "G1", "上报时间": "2026-11-01 10:00:00", "事件类型代码": "A02", "经度": "12832551.78",
           "纬度": "2609443.31", "坐标系": declared, "处理状态": "登记受理", "详细地址": "新港街道某路1号"}
    staged = stage([row], areas, profile="demo_grid")
    [rej] = staged.rejects.to_dict("records")
    assert rej["reason"] == S.UNSUPPORTED_CRS and "BD09MC" in rej["detail"] and "12832551.78" in rej["detail"]
    assert staged.events.empty


def test_duplicate_in_file_keeps_the_later_row(areas, inside):
    staged = stage([police_row(inside), police_row(inside, 接警单状态="先行调解")], areas)
    assert list(staged.events["status"]) == ["先行调解"]
    [rej] = staged.rejects.to_dict("records")
    assert rej["reason"] == S.DUPLICATE_IN_FILE and rej["source_row"] == 1
    # a later copy that is itself quarantined leaves the earlier, valid row loaded: no version was lost
    staged = stage([police_row(inside), police_row(inside, 接警单状态="已办结", 办结时间="2026-10-01 00:00:00")], areas)
    assert list(staged.events["status"]) == ["登记受理"]
    [rej] = staged.rejects.to_dict("records")
    assert (rej["reason"], rej["source_row"]) == (S.CLOSED_BEFORE_REPORTED, 2)


def test_swapped_and_scaled_coordinates_are_repaired(areas, inside):
    lng, lat, grid = inside
    rows = [police_row(inside, 接警单编号="J1", 经度=f"{lat:.6f}", 纬度=f"{lng:.6f}"),
            police_row(inside, 接警单编号="J2", 经度=str(round(lng * 1e6)), 纬度=str(round(lat * 1e6)))]
    staged = stage(rows, areas)
    assert staged.rejects.empty
    assert list(staged.events["grid_code"]) == [grid, grid]


def test_grid_crs_column_converts_gcj02_and_bd09(areas, inside):
    lng, lat, grid = inside
    glng, glat = wgs84_to_gcj02(lng=lng, lat=lat)
    blng, blat = wgs84_to_bd09(lng=lng, lat=lat)
    base = {"上报时间": "2026-11-01 10:00:00", "事件类型代码": "A02", "处理状态": "登记受理"}
    rows = [{**base, "事件编号": "G1", "经度": f"{glng:.7f}", "纬度": f"{glat:.7f}", "坐标系": "GCJ02"},
            {**base, "事件编号": "G2", "经度": f"{blng:.7f}", "纬度": f"{blat:.7f}", "坐标系": "BD09"}]
    staged = stage(rows, areas, profile="demo_grid")
    assert staged.rejects.empty
    ev = staged.events
    assert (abs(ev["lng"] - lng) * 102_000).max() < 0.5 and (abs(ev["lat"] - lat) * 110_540).max() < 0.5
    assert list(ev["src_crs"]) == ["gcj02", "bd09"]


def test_address_only_rows_get_area_precision_and_no_point(areas, inside):
    town = areas.towns.iloc[0]
    village = areas.villages[areas.villages["parent_code"] == town["code"]].iloc[0]
    staged = stage([police_row(inside, 经度="", 纬度="", 案发地址=f"{town['name']}{village['name']}附近")], areas)
    e = staged.events.iloc[0]
    assert e["geocode_method"] == "address" and e["geocode_precision"] == "village"
    assert e["village_code"] == village["code"] and pd.isna(e["lng"]) and pd.isna(e["h3_cell"])


def test_missing_required_column_refuses_the_file(areas, inside):
    row = police_row(inside)
    del row["报警类别代码"]
    with pytest.raises(S.MissingColumnError, match="报警类别代码"):
        stage([row], areas)


# ------------------------------------------------------------------------------------ malformed files

def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


HEADER = "接警单编号,报警时间,报警类别代码,报警内容\n"


def test_gb18030_and_bom_files_read_the_same(tmp_path):
    text = HEADER + "J1,2026-11-01 10:00:00,200201,邻里纠纷\n"
    a = read_export(_write(tmp_path, "a.csv", text.encode("gb18030")))
    b = read_export(_write(tmp_path, "b.csv", text.encode("utf-8-sig")))
    assert a.frame.drop(columns="__row").equals(b.frame.drop(columns="__row"))
    assert a.encoding == "gb18030" and b.encoding == "utf-8-sig"


@pytest.mark.parametrize("name, data, message", [
    ("empty.csv", b"", "empty"),
    ("bad.xlsx", b"PK\x03\x04 not really a zip", "not a readable .xlsx"),
    ("x.parquet", b"PAR1", "unsupported file type"),
    ("header.csv", b"a,a\n1,2\n", "repeats column"),
    ("latin.csv", HEADER.encode() + b"J1,2026-11-01,200201,\x80\x80\xff\xfe\xff\n", "GB18030"),
])
def test_unreadable_files_raise_a_clear_error(tmp_path, name, data, message):
    with pytest.raises(ReadError, match=message) as exc:
        read_export(_write(tmp_path, name, data))
    assert name in str(exc.value)


def test_ragged_rows_are_reported_not_dropped(tmp_path):
    text = HEADER + "J1,2026-11-01 10:00:00,200201,ok\nJ2,2026-11-01,200201,too,many,fields\nJ3,2026-11-01 11:00:00,200202,ok\n"
    r = read_export(_write(tmp_path, "ragged.csv", text.encode()))
    assert r.rows_read == 3 and list(r.frame["接警单编号"]) == ["J1", "J3"]
    assert list(r.frame["__row"]) == [1, 3] and list(r.malformed["source_row"]) == [2]


def test_truncated_file_keeps_complete_rows(tmp_path):
    text = HEADER + "J1,2026-11-01 10:00:00,200201,ok\nJ2,2026-11-0"
    r = read_export(_write(tmp_path, "trunc.csv", text.encode()))
    assert r.rows_read == 2  # the cut row is read, and will fail validation with a reason


def test_enormous_fields_are_cut(tmp_path):
    text = HEADER + "J1,2026-11-01 10:00:00,200201," + "长" * 100_000 + "\n"
    r = read_export(_write(tmp_path, "big.csv", text.encode()))
    assert len(r.frame["报警内容"].iloc[0]) == 20_000


def test_long_chinese_cells_under_the_limit_are_kept_whole(tmp_path):
    text = HEADER + "J1,2026-11-01 10:00:00,200201," + "长" * 15_000 + "\n"  # 45,000 bytes, 15,000 characters
    r = read_export(_write(tmp_path, "long.csv", text.encode()))
    assert r.frame["报警内容"].iloc[0] == "长" * 15_000


def test_a_row_longer_than_a_parse_block_is_read_by_arrow(tmp_path, monkeypatch):
    import pipelines.readers as readers

    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 1024)
    monkeypatch.setattr(readers, "_read_csv_tolerant", lambda *a: pytest.fail("fell back to the slow reader"))
    rows = [f"J{i},2026-11-01 10:00:00,200201,{'长' * (3000 if i == 5 else 10)}" for i in range(40)]
    r = read_export(_write(tmp_path, "blocks.csv", (HEADER + "\n".join(rows) + "\n").encode()))
    assert len(r.frame) == 40 and r.malformed.empty
    assert r.frame["报警内容"].iloc[5] == "长" * 3000


def test_wrong_sheet_is_named(tmp_path):
    p = tmp_path / "w.xlsx"
    pd.DataFrame({"事件编号": ["G1"]}).to_excel(p, sheet_name="巡查上报", index=False)
    with pytest.raises(ReadError, match="巡查上报"):
        read_export(p, sheet="Sheet9")


def test_a_cover_sheet_before_the_data_names_the_sheets(tmp_path):
    """An export whose first sheet is a cover (本表由12345系统导出): the error names the sheets and --sheet."""
    p = tmp_path / "w.xlsx"
    with pd.ExcelWriter(p) as book:
        pd.DataFrame({"本表由12345系统导出": []}).to_excel(book, sheet_name="说明", index=False)
        pd.DataFrame({"工单编号": ["G1"], "受理时间": ["2026-11-01"], "诉求类型": ["x"]}).to_excel(
            book, sheet_name="工单", index=False)
    with pytest.raises(ReadError, match=r"sheet '说明' holds no table .* \['说明', '工单'\]: name the data sheet"):
        read_export(p)
    assert list(read_export(p, sheet="工单").frame["工单编号"]) == ["G1"]


def test_jsonl_with_bad_lines(tmp_path):
    lines = [json.dumps({"接警单编号": "J1", "报警时间": "2026-11-01 10:00:00"}, ensure_ascii=False), "{broken",
             "[1, 2]", json.dumps({"接警单编号": "J2", "报警时间": 20261101}, ensure_ascii=False)]
    r = read_export(_write(tmp_path, "x.jsonl", "\n".join(lines).encode()))
    assert list(r.frame["接警单编号"]) == ["J1", "J2"] and list(r.frame["报警时间"]) == ["2026-11-01 10:00:00", "20261101"]
    assert list(r.malformed["source_row"]) == [2, 3]


def test_mixed_types_in_xlsx_are_text(tmp_path):
    p = tmp_path / "m.xlsx"
    pd.DataFrame({"事件编号": [441502001001, "G2"], "经度": [115.37, "东经115度"]}).to_excel(p, index=False)
    r = read_export(p)
    assert list(r.frame["事件编号"]) == ["441502001001", "G2"]
    assert list(r.frame["经度"]) == ["115.37", "东经115度"]


def test_unnamed_free_text_columns_are_redacted_in_ext(areas, inside):
    staged = stage([police_row(inside, 处警反馈="已联系报警人王小明，电话13812345678")], areas)
    ext = json.loads(staged.events.iloc[0]["ext"])
    assert "13812345678" not in ext["处警反馈"] and "王小明" not in ext["处警反馈"]


def test_quarantine_rows_of_an_earlier_version_are_scrubbed_by_the_next_load(areas, inside, settings, tmp_path):
    """An earlier version kept the free text of quarantined rows as read (names, phone numbers): the next load
    (or build) removes the party and dropped columns and redacts the text, once, and marks the rows scrubbed."""
    from onemap.warehouse import write_session
    from pipelines.ingest import ingest

    from .warehouse import query_rows

    bad = police_row(inside, 接警单编号="J1", 报警类别代码="299999")
    ingest(settings, "police", [_write(tmp_path, "a.csv", pd.DataFrame([bad]).to_csv(index=False).encode())],
           progress=False)
    as_read = json.dumps({**bad, "报警人姓名": "王小明"}, ensure_ascii=False)
    with write_session(settings.warehouse_path, settings.timezone) as con:  # what the earlier version wrote
        con.execute("UPDATE staging.rejects SET raw = ?, scrubbed = NULL", [as_read])
    assert "13812345678" in query_rows(settings, "SELECT raw FROM staging.rejects")[0][0]
    ingest(settings, "police", [_write(tmp_path, "b.csv", pd.DataFrame([police_row(inside, 接警单编号="J2")])
                                       .to_csv(index=False).encode())], progress=False)
    [(raw, scrubbed)] = query_rows(settings, "SELECT raw, scrubbed FROM staging.rejects")
    values = json.loads(raw)
    assert scrubbed is True and "报警人姓名" not in values and "13812345678" not in raw and "王小明" not in raw
    assert values["报警类别代码"] == "299999" and "邻居漏水" in values["报警内容"]  # the rest as it was


@pytest.mark.parametrize("shift", ["extra_before", "extra_after", "missing_before", "missing_after"])
def test_a_malformed_rows_party_values_are_taken_out_wherever_the_row_is_shifted(inside, settings, tmp_path, shift):
    """A police row with a field too many or too few, before or after the caller's name: the name (a bare name,
    which text redaction cannot know) and phone number are not kept in quarantine; the other text is."""
    from pipelines.ingest import ingest

    from .warehouse import query_rows

    row = police_row(inside, 接警单编号="JX9", 报警人姓名="周建涛", 报警电话="13812349876", 报警内容="漏水纠纷")
    header, values = list(row), list(row.values())
    name_at = header.index("报警人姓名")
    edit = {"extra_before": lambda v: v[:2] + ["多出的值"] + v[2:], "extra_after": lambda v: v + ["多出的值"],
            "missing_before": lambda v: v[:2] + v[3:], "missing_after": lambda v: v[:name_at + 2] + v[name_at + 3:]}
    text = ",".join(header) + "\n" + ",".join(edit[shift](values)) + "\n"
    [summary] = ingest(settings, "police", [_write(tmp_path, f"{shift}.csv", text.encode())], progress=False)
    assert summary.reconciles and summary.reasons.get(S.MALFORMED_ROW) == 1
    [(raw,)] = query_rows(settings, f"SELECT raw FROM staging.rejects WHERE source_file = '{shift}.csv'")
    line = json.loads(raw)["line"]
    assert "周建涛" not in line and "13812349876" not in line and "[已删除]" in line
    assert "JX9" in line and "漏水纠纷" in line


def test_a_broken_json_lines_party_values_are_taken_out():
    from pipelines.stage import _malformed_raw

    profile = load_profile("demo_police")
    line = '{"接警单编号": "J1", "报警人姓名": "周建涛", "报警电话": 13812349876, "报警内容": "漏水'
    kept = json.loads(_malformed_raw(line, None, [], profile))["line"]
    assert "周建涛" not in kept and "13812349876" not in kept and '"接警单编号": "J1"' in kept


def test_an_export_taken_earlier_holds_nothing_reported_after_it(areas, inside):
    """--taken-at: a record reported (or closed) more than a day after the export was taken cannot be in it."""
    raw = pd.DataFrame([police_row(inside, 接警单编号="J1"), police_row(inside, 接警单编号="J2", 报警时间="2026-10-01 08:00:00",
                                                                   办理期限="2026-10-08 08:00:00")], dtype=object)
    raw.insert(0, "__row", [1, 2])
    ctx = S.StageContext(areas=areas, categories=CategoryMap.load(), hmac_key=b"k" * 32, batch_id="b",
                         source_file="old.csv", now=NOW, taken_at=pd.Timestamp("2026-10-05 10:00", tz="Asia/Shanghai"))
    staged = S.stage_export(raw, load_profile("demo_police"), ctx)
    assert list(staged.events["source_record_id"]) == ["J2"]
    [rej] = staged.rejects.to_dict("records")
    assert (rej["reason"], rej["field"], rej["source_row"]) == (S.TIME_IN_FUTURE, "报警时间", 1)
    assert "--taken-at" in rej["detail"]


def test_slash_dates_are_read_one_way_for_the_whole_file(areas, inside):
    """03/11/2026 is 3 November in a file whose other rows say day first (13/11/2026), 11 March in one that says
    month first (11/13/2026); a file with both cannot be read either way: those rows are bad_time, not each read
    its own way. 2026年11月13日 reads as a date."""
    def reported(values):
        rows = [police_row(inside, 接警单编号=f"J{i}", 报警时间=v, 办理期限="") for i, v in enumerate(values)]
        staged = stage(rows, areas)
        return ([f"{t:%m-%d}" for t in staged.events["reported_at"]],
                sorted((r["source_row"], r["reason"]) for r in staged.rejects.to_dict("records")))

    assert reported(["03/11/2026 10:20", "13/11/2026 10:20"]) == (["11-03", "11-13"], [])
    assert reported(["03/11/2026 10:20", "10/13/2026 10:20"]) == (["03-11", "10-13"], [])
    assert reported(["2026年10月13日 10:20", "2026-10-14 08:00:00"]) == (["10-13", "10-14"], [])
    # no row says the order: 03/11 and 04/11 cannot be read (each could be either day); 05/05 reads alike
    assert reported(["03/11/2026 10:20", "04/11/2026 10:20", "05/05/2026 10:20"]) == (
        ["05-05"], [(1, S.BAD_TIME), (2, S.BAD_TIME)])
    # 14时20分 (and 秒) read as a time of day
    rows = [police_row(inside, 接警单编号="K1", 报警时间="2026年10月13日 14时20分", 办理期限=""),
            police_row(inside, 接警单编号="K2", 报警时间="2026年10月13日 9时5分30秒", 办理期限="")]
    assert [f"{t:%H:%M:%S}" for t in stage(rows, areas).events["reported_at"]] == ["14:20:00", "09:05:30"]
    bad = stage([police_row(inside, 报警时间="十月十三日", 办理期限="")], areas).rejects.iloc[0]
    assert bad["reason"] == S.BAD_TIME and "[times] formats" in bad["detail"]
    events, rejects = reported(["03/11/2026 10:20", "13/10/2026 10:20", "10/13/2026 10:20", "2026-10-14 08:00:00"])
    assert events == ["10-14"] and rejects == [(1, S.BAD_TIME), (2, S.BAD_TIME), (3, S.BAD_TIME)]


def test_an_unusable_point_falls_back_to_the_grid_code_before_an_address_of_its_village(areas):
    """A grid report whose point is unusable (zero) but whose 所属网格 is a grid of the deployment and whose
    address names only the village: placed at that grid (finer), not at the village; without the grid code, at
    the village; an address naming the grid itself is as fine."""
    grid = areas.grids.iloc[5]
    village = areas.villages[areas.villages["code"] == grid["parent_code"]].iloc[0]
    town = areas.towns[areas.towns["code"] == village["parent_code"]].iloc[0]
    row = {"事件编号": "G1", "上报时间": "2026-11-01 10:00:00", "事件类型代码": "A02", "经度": "0", "纬度": "0",
           "坐标系": "GCJ02", "处理状态": "登记受理", "事件描述": "邻里纠纷", "详细地址": f"{town['name']}{village['name']}某路1号",
           "所属网格": str(grid["code"])}
    staged = stage([row], areas, profile="demo_grid")
    [e] = staged.events.to_dict("records")
    assert (e["geocode_method"], e["geocode_precision"], e["grid_code"], e["village_code"]) == \
        ("grid-code", "grid", grid["code"], village["code"])
    assert staged.unusable_points == 1  # the summary says how many points were dropped
    [e] = stage([{**row, "所属网格": ""}], areas, profile="demo_grid").events.to_dict("records")
    assert (e["geocode_method"], e["geocode_precision"], e["village_code"]) == ("address", "village", village["code"])


def test_the_confidential_flag_reads_its_own_words(areas, inside):
    grid = areas.grids.iloc[5]
    row = {"事件编号": "G1", "上报时间": "2026-11-01 10:00:00", "事件类型代码": "A02", "经度": f"{inside[0]:.6f}",
           "纬度": f"{inside[1]:.6f}", "坐标系": "WGS84", "处理状态": "登记受理", "所属网格": str(grid["code"])}
    rows = [{**row, "事件编号": f"G{i}", "是否保密": v} for i, v in enumerate(["保密", "不保密", "是", "否", "也许"])]
    staged = stage(rows, areas, profile="demo_grid")
    assert list(staged.events["confidential"]) == [True, False, True, False]
    [rej] = staged.rejects.to_dict("records")
    assert (rej["reason"], rej["field"], rej["source_row"]) == (S.BAD_NUMBER, "是否保密", 5)


def test_an_xlsx_with_a_title_above_its_table_is_read_from_its_header(tmp_path):
    """Chinese workbooks often carry a title row (one merged cell) and a line under it above the header."""
    import openpyxl

    p = tmp_path / "台账.xlsx"
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["2026年11月网格事件台账"])
    ws.merge_cells("A1:D1")
    ws.append(["制表单位：新港街道", None, "日期：2026-11-30"])
    ws.append(["事件编号", "上报时间", "事件类型代码", "事件描述"])
    ws.append(["G1", "2026-11-01 10:00:00", "A02", "邻里纠纷"])
    ws.append(["G2", "2026-11-02 10:00:00", "A01", "家庭纠纷"])
    book.save(p)
    read = read_export(p)
    assert list(read.frame.columns[1:]) == ["事件编号", "上报时间", "事件类型代码", "事件描述"]
    assert list(read.frame["事件编号"]) == ["G1", "G2"] and list(read.frame["__row"]) == [1, 2]


def test_source_codes_match_whatever_their_case_and_spaces():
    categories = CategoryMap.load()
    got = categories.map("grid_app", pd.Series([" a01 ", "A01", "a02", "NOPE7"]))["category_code"].tolist()
    assert got[:3] == ["MD01", "MD01", "MD02"] and pd.isna(got[3])
    # the table's codes that differ only in case agree on category and flags
    table = categories.table.assign(key=categories.table["source_code"].astype(str).str.strip().str.lower())
    assert (table.groupby(["source_system", "key"])[["category_code", "flags"]].nunique() <= 1).all().all()


def test_outcome_words_the_kpis_do_not_know_are_counted_for_the_summary(areas, inside):
    """化解率 counts outcome 化解; an export saying 调解成功 loads, but the summary names the word so that the
    profile can map it ([values.outcome]) rather than the rate undercount without a word."""
    from pipelines.ingest import BatchSummary

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00"}
    staged = stage([police_row(inside, 接警单编号="J1", 处置结果="调解成功", **closed),
                    police_row(inside, 接警单编号="J2", 处置结果="化解", **closed),
                    police_row(inside, 接警单编号="J3", 处置结果="调解成功", **closed)], areas)
    assert len(staged.events) == 3 and staged.other_outcomes == {"调解成功": 2}
    line = BatchSummary("b", "police", "f.csv", "demo_police", 3, inserted=3, other_outcomes=staged.other_outcomes).line()
    assert "outcomes 化解率 does not count as 化解" in line and "调解成功 2" in line


def test_a_rows_own_party_values_are_taken_out_of_its_free_text(areas, inside):
    """A name the patterns miss (no cue word before it) is still known from the row's own 报警人姓名: it goes from
    the summary, the address and any column kept in ext; the phone number as well."""
    row = police_row(inside, 报警内容="张大山家门口有人吵架，回拨13912345678无人接", 案发地址="张大山家附近",
                     报警人姓名="张大山", 报警电话="13912345678", 备注="已回访张大山")
    staged = stage([row], areas)
    e = staged.events.iloc[0]
    assert "张大山" not in e["summary_redacted"] + e["address_redacted"] + e["ext"]
    assert e["summary_redacted"].startswith("[姓名]家门口") and "13912345678" not in e["summary_redacted"]
    assert staged.redactions.get("party_value", 0) >= 2


@pytest.mark.parametrize("text", ["市民陈国庆来电反映路灯不亮", "我叫黄志强，家住某路"])
def test_the_12345_ways_of_naming_a_caller_are_redacted(text):
    from pipelines.redact import redact_text

    assert "[姓名]" in redact_text(text) and not any(n in redact_text(text) for n in ("陈国庆", "黄志强"))


def test_the_summary_says_what_the_files_header_lacks_or_keeps_beyond_the_profile(settings, inside, tmp_path):
    """Renamed caller columns (联系人 for 报警人姓名) would be kept in ext as they are, and a misspelt mapped header
    loads its field empty: the load says both, and which columns went to ext."""
    from pipelines.ingest import ingest

    row = police_row(inside)
    row["联系人"] = row.pop("报警人姓名")
    row["联系电话"] = row.pop("报警电话")
    row["办结日期"] = row.pop("办结时间")
    path = _write(tmp_path, "renamed.csv", pd.DataFrame([row]).to_csv(index=False).encode())
    [summary] = ingest(settings, "police", [path], progress=False)
    text = summary.line()
    assert "WARNING: none of the [party] columns (报警人姓名" in text
    assert "header lacks (loaded empty): " in text and "closed_at (办结时间" in text
    assert "columns kept in ext, mapped to no field (free text redacted): 联系人, 联系电话, 办结日期" in text
    plain = ingest(settings, "police", [_write(tmp_path, "plain.csv", pd.DataFrame([police_row(inside, 接警单编号="J2")])
                                               .to_csv(index=False).encode())], progress=False)[0].line()
    assert "[party]" not in plain and "kept in ext" not in plain


def test_the_summary_names_the_words_of_coded_fields_no_table_reads(settings, inside, tmp_path):
    """满意度 saying 满意 quarantines the case (bad_number); the summary lists the words per field with the
    [values.<field>] table that would read them."""
    from pipelines.ingest import ingest

    rows = [police_row(inside, 接警单编号=f"S{i}", 是否现场处结=w) for i, w in enumerate(["也许", "也许", "不清楚", "是"])]
    [summary] = ingest(settings, "police", [_write(tmp_path, "s.csv", pd.DataFrame(rows).to_csv(index=False).encode())],
                       progress=False)
    assert summary.not_understood == {"是否现场处结 (on_site_closed)": {"也许": 2, "不清楚": 1}}
    assert ("是否现场处结 (on_site_closed): values no table reads (quarantined; if they mean a product value, map them "
            "in the profile's [values.on_site_closed]): 也许 2, 不清楚 1") in summary.line()
