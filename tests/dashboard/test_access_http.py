"""Sign-in and jurisdiction scoping on the server, over HTTP (Flask's test client): without a session nothing
but the sign-in page and static files is served, and a town user's callbacks return only the town's data
whatever the browser sends."""
import base64
import dataclasses
import datetime as dt
import io
import json
import re

import numpy as np
import pytest

from onemap import queries
from onemap.access import DEMO_ACCOUNTS, add_user, remove_user
from onemap.metrics import format_moment, format_value, kpi

TOWN = next(a for a in DEMO_ACCOUNTS if a.name == "xingang")
COUNTY = next(a for a in DEMO_ACCOUNTS if a.name == "county")
VILLAGE = next(a for a in DEMO_ACCOUNTS if a.name == "haijing")


@pytest.fixture(scope="module")
def app(demo_settings):
    from dashboard.app import create_app

    return create_app(demo_settings)


def _login_form(client, name: str, password: str, target: str = "/"):
    """Fill in the sign-in form as a browser does: fetch it (it carries this session's token), then post it."""
    page = client.get("/login", query_string={"next": target})
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"user": name, "password": password, "next": target, "token": token})


def _sign_in(client, account, target="/"):
    return _login_form(client, account.name, account.password, target)


def _text(resp) -> str:
    """A JSON response as text with its Chinese unescaped."""
    return json.dumps(resp.get_json(), ensure_ascii=False)


def _numbers(values) -> np.ndarray:
    """A numeric array of a plotly figure as sent to the browser (base64-encoded, or a plain list)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def _call(client, output_id: str, inputs: dict, state: dict | None = None, status: int = 200) -> dict | None:
    """Post one callback the way the Dash renderer does, for the callback whose outputs include ``output_id``;
    the response is expected to have ``status`` (204: Dash's "no update", then None is returned)."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if output_id in d["output"])
    body = {
        "output": dep["output"],
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                    for o in dep["output"].strip(".").split("...")] if dep["output"].startswith("..")
        else {"id": dep["output"].split(".")[0], "property": dep["output"].split(".")[1]},
        # a value given as state serves an input as well (a control that became an input keeps its tests)
        "inputs": [{"id": i["id"], "property": i["property"],
                    "value": inputs.get(f"{i['id']}.{i['property']}", (state or {}).get(f"{i['id']}.{i['property']}"))}
                   for i in dep["inputs"]],
        "state": [{"id": s["id"], "property": s["property"], "value": (state or {}).get(f"{s['id']}.{s['property']}")}
                  for s in dep["state"]],
        "changedPropIds": [next(iter(inputs))],
    }
    resp = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == status, resp.data[:300]
    return resp.get_json()["response"] if status == 200 else None


def test_without_a_session_only_the_sign_in_page_and_static_files_are_served(app):
    client = app.server.test_client()
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/login?next=/")
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/_dash-dependencies").status_code == 401
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/assets/style.css").status_code == 200
    login = client.get("/login")
    assert login.status_code == 200 and "登录" in login.text
    # the synthetic demo county shows its documented demo accounts; a real deployment would not
    assert TOWN.name in login.text and TOWN.password in login.text


def test_a_wrong_password_is_refused_and_sign_in_goes_only_to_pages_of_this_server(app):
    client = app.server.test_client()
    bad = _login_form(client, TOWN.name, "wrong-password")
    assert bad.status_code == 401 and "用户名或密码不正确" in bad.text
    assert client.get("/_dash-layout").status_code == 401
    for target in ("http://evil.example/", "//evil.example/x", "/\\evil.example/x", "javascript:alert(1)"):
        resp = _sign_in(app.server.test_client(), TOWN, target)
        assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert _sign_in(client, TOWN, "/?x=1").headers["Location"] == "/?x=1"
    assert client.get("/_dash-layout").status_code == 200
    client.get("/logout")
    assert client.get("/_dash-layout").status_code == 401


def test_a_town_user_gets_the_towns_numbers_only(app, con):
    client = app.server.test_client()
    _sign_in(client, TOWN)
    layout = _text(client.get("/_dash-layout"))
    town = queries.area_scope(con, TOWN.area)
    assert town.name in layout and "退出" in layout
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    inputs = {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [], "sources.value": [],
              "resolution.value": 9, "layer.value": "counts", "refresh.n_intervals": None}
    out = _call(client, "kpi-registered.children", inputs)
    in_town = con.execute("SELECT count(*) FROM core.events WHERE town_code = ? AND CAST(reported_at AS DATE) "
                          "BETWEEN ? AND ?", [town.code, start, last]).fetchall()[0][0]
    county = con.execute("SELECT count(*) FROM core.events WHERE CAST(reported_at AS DATE) BETWEEN ? AND ?",
                         [start, last]).fetchall()[0][0]
    assert out["kpi-registered"]["children"] == f"{in_town:,}" and in_town < county
    share = kpi("village_share")  # the strip's 小事不出村 card: the town's own closed cases
    town_kpis = queries.kpis(con, queries.EventFilter(start, last, scope=town), queries.reference_time(con))
    county_kpis = queries.kpis(con, queries.EventFilter(start, last), queries.reference_time(con))
    assert out["kpi-village_share"]["children"] == format_value(share, town_kpis["village_share"])
    assert format_value(share, town_kpis["village_share"]) != format_value(share, county_kpis["village_share"])
    hexes = next(t for t in out["map"]["figure"]["data"] if t["type"] == "choroplethmap")
    town_cells = set(queries.hex_counts(con, queries.EventFilter(start, last, scope=town), 9)["cell"])
    assert set(hexes["locations"]) <= town_cells
    # the map's outlines and names are the town's own: its outline, its villages and grids, their names
    layers = [{f["id"] for f in _outline(client, layer)["features"]} for layer in out["map"]["figure"]["layout"]["map"]["layers"]]
    villages = queries.child_areas(con, town)
    assert {town.code} in layers and set(villages["code"]) in layers
    assert all(code.startswith(town.code) for ids in layers for code in ids) and sum(map(len, layers)) > 20
    names = next(t for t in out["map"]["figure"]["data"] if t["type"] == "scattermap")["text"]
    assert set(names) == set(villages["name"])

    # a hex of another town: the drill-down lists nothing of it
    other = con.execute("SELECT h3_cell FROM core.events WHERE town_code <> ? AND h3_cell IS NOT NULL AND "
                        "CAST(reported_at AS DATE) BETWEEN ? AND ? GROUP BY 1 HAVING bool_and(town_code <> ?) "
                        "ORDER BY count(*) DESC LIMIT 1", [town.code, start, last, town.code]).fetchall()[0][0]
    detail = _call(client, "detail-body.children", {"map.clickData": {"points": [{"location": format(int(other), "x")}]}},
                   {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [],
                    "sources.value": [], "resolution.value": 15})
    assert "无事件" in json.dumps(detail["detail-body"]["children"], ensure_ascii=False)


def test_a_town_users_brief_is_the_towns(app, con):
    import docx

    client = app.server.test_client()
    _sign_in(client, TOWN)
    out = _call(client, "brief-download.data", {"brief-docx.n_clicks": 1, "brief-pdf.n_clicks": None})
    sent = out["brief-download"]["data"]
    town = queries.area_scope(con, TOWN.area)
    assert town.name in sent["filename"]
    document = docx.Document(io.BytesIO(base64.b64decode(sent["content"])))
    assert town.name in document.paragraphs[0].text
    # drilled down to one of its villages, the brief is the village's; another town's code gives the town's own
    village = queries.child_areas(con, town).iloc[0]
    other = next(c for c in queries.child_areas(con, None)["code"] if c != town.code)
    for search, name in ((f"?area={village['code']}", village["name"]), (f"?area={other}", town.name)):
        out = _call(client, "brief-download.data", {"brief-docx.n_clicks": 2, "brief-pdf.n_clicks": None},
                    {"url.search": search})
        assert f"研判周报_{name}_" in out["brief-download"]["data"]["filename"], search


def test_an_account_removed_or_moved_takes_effect_at_the_next_request(demo_settings, con, tmp_path):
    from dashboard.app import create_app

    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "users.toml")
    add_user(settings.users_path, "temp", TOWN.area, "viewer", "temporary-pw")
    client = create_app(settings).server.test_client()
    assert _sign_in(client, dataclasses.replace(TOWN, name="temp", password="temporary-pw")).status_code == 302
    assert client.get("/_dash-layout").status_code == 200
    village = queries.child_areas(con, queries.area_scope(con, TOWN.area)).iloc[0]
    add_user(settings.users_path, "temp", village.code, "viewer", "temporary-pw", replace=True)
    assert village["name"] in _text(client.get("/_dash-layout"))
    remove_user(settings.users_path, "temp")
    assert client.get("/_dash-layout").status_code == 401


def test_without_accounts_the_map_is_open_on_this_machine_only(demo_settings, tmp_path, monkeypatch, capsys):
    from dashboard.app import create_app
    from onemap.cli import main

    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "none.toml")
    client = create_app(settings).server.test_client()
    assert client.get("/_dash-layout").status_code == 200  # open: the whole county, non-handling
    monkeypatch.setenv("ONEMAP_ACCESS__USERS_FILE", str(tmp_path / "none.toml"))
    assert main(["--home", str(demo_settings.home), "serve", "--host", "0.0.0.0"]) == 2
    assert "needs user accounts" in capsys.readouterr().err


def test_the_wall_screen_is_public_shows_its_own_area_and_lists_no_events(demo_settings, con):
    from dashboard.app import create_app

    town = queries.area_scope(con, TOWN.area)
    client = create_app(demo_settings, kiosk=True, kiosk_area=town.code).server.test_client()
    assert client.get("/_dash-layout").status_code == 200  # no sign-in on a wall screen
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    out = _call(client, "kpi-registered.children",
                {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [],
                 "sources.value": [], "resolution.value": 9, "layer.value": "counts", "refresh.n_intervals": None})
    n = queries.kpis(con, queries.EventFilter(start, last, scope=town))["registered"]
    assert out["kpi-registered"]["children"] == f"{int(n):,}"
    hexes = next(t for t in out["map"]["figure"]["data"] if t["type"] == "choroplethmap")
    z = _numbers(hexes["z"])
    assert len(z) and z.min() >= demo_settings.small_count_suppress
    cell = hexes["locations"][0]
    detail = _call(client, "detail-body.children", {"map.clickData": {"points": [{"location": cell}]}},
                   {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [],
                    "sources.value": [], "resolution.value": 9})
    assert "大屏不显示事件明细" in json.dumps(detail, ensure_ascii=False)
    # nor a brief (its 督办 list names cases), even asked for by hand; nor a hex export
    _call(client, "brief-download.data", {"brief-docx.n_clicks": 1, "brief-pdf.n_clicks": None}, status=204)
    _call(client, "hex-download.data", {"hex-csv.n_clicks": 1, "hex-geojson.n_clicks": None},
          {"dates.start_date": "2000-01-01", "dates.end_date": f"{last}", "resolution.value": 9,
           "layer.value": "counts"}, status=204)
    # a request made by hand for another period or category gets the screen's own period, every category
    other = _call(client, "kpi-registered.children",
                  {"dates.start_date": "2000-01-01", "dates.end_date": f"{last}", "categories.value": ["MD02"],
                   "sources.value": ["police"], "resolution.value": 9, "layer.value": "counts",
                   "refresh.n_intervals": None})
    assert other["kpi-registered"]["children"] == f"{int(n):,}"
    # it turns through its views, one per refresh: events, the overdue burden, emerging hot spots, events again;
    # the tick itself redraws nothing (the new view does, once)
    views = [_call(client, "layer.value", {"refresh.n_intervals": n})["layer"]["value"] for n in (1, 2, 3, 4)]
    _call(client, "kpi-registered.children", {"refresh.n_intervals": 1, "dates.start_date": f"{start}",
                                              "dates.end_date": f"{last}", "categories.value": [], "sources.value": [],
                                              "resolution.value": 9, "layer.value": "overdue"}, status=204)
    assert views == ["overdue", "hotspots", "counts", "overdue"]
    # nor the per-village table (a village's handful of cases is not for a public screen)
    assert _call(client, "areas.children", {"dates.start_date": f"{start}", "dates.end_date": f"{last}"}
                 )["areas"]["children"] is None


def test_the_wall_screen_draws_its_type_for_its_screen_and_names_no_control_it_lacks(app, demo_settings, con):
    """plotly's type is in pixels: the wall screen's browser reports its size (assets/kiosk.js, a cookie) and the
    map's names, notes and caption and the daily chart are drawn for it, twice as large on a 3840×2160 screen as on
    a 1920×1080 one; the desk's chart is not. The hot-spot view's note names no control: the wall screen has none."""
    from dashboard.app import create_app

    client = create_app(demo_settings, kiosk=True).server.test_client()
    last = queries.date_bounds(con)[1]
    period = {"dates.start_date": f"{last - dt.timedelta(days=27)}", "dates.end_date": f"{last}",
              "categories.value": [], "sources.value": [], "url.search": ""}

    def drawn(screen: str | None, layer: str = "counts") -> tuple[dict, dict]:
        if screen is None:
            client.delete_cookie("onemap_screen")
        else:
            client.set_cookie("onemap_screen", screen)
        fig = _call(client, "map.figure", {**period, "resolution.value": 8, "layer.value": layer,
                                           "refresh.n_intervals": None})["map"]["figure"]
        return fig, _call(client, "daily.figure", {**period, "refresh.n_intervals": None})["daily"]["figure"]

    def sizes(fig: dict, daily: dict) -> dict:
        layout = fig["layout"]
        return {"names": next(t["textfont"]["size"] for t in fig["data"] if t["type"] == "scattermap"),
                "notes": sorted(a["font"]["size"] for a in layout["annotations"]), "font": layout["font"]["size"],
                "pad": layout["meta"]["pad"]["top"], "daily": (daily["layout"]["height"], daily["layout"]["font"]["size"])}

    hd, uhd = sizes(*drawn("1920x1080")), sizes(*drawn("3840x2160"))
    assert hd == {"names": 15, "notes": [17, 26], "font": 16, "pad": 64, "daily": (170, 14)}, hd
    assert uhd == {"names": 30, "notes": [34, 52], "font": 32, "pad": 128, "daily": (340, 28)}, uhd
    assert sizes(*drawn(None)) == sizes(*drawn("not-a-size")) == hd  # a browser that did not say: 1920×1080
    assert sizes(*drawn("5760x1080")) == hd  # three 1080p screens side by side: the height decides

    hotspots, _ = drawn("3840x2160", "hotspots")
    note = " ".join(a["text"] for a in hotspots["layout"]["annotations"])
    assert "不是对下周的预测" in note and "新兴热点" in note, note
    assert not any(word in note for word in ("所选", "不随", "类别与来源")), note
    layout = json.dumps(client.get("/_dash-layout").get_json(), ensure_ascii=False)
    assert "每日受理与日终积压（近28天）" in layout and "每日受理与日终积压（所选时段）" not in layout

    # the desk screen keeps its own chart, whatever its browser says
    desk = app.server.test_client()
    _sign_in(desk, COUNTY)
    desk.set_cookie("onemap_screen", "3840x2160")
    daily = _call(desk, "daily.figure", {**period, "refresh.n_intervals": None})["daily"]["figure"]["layout"]
    assert (daily["height"], daily["font"]["size"]) == (190, 11)


def _outline(client, layer: dict) -> dict:
    """An outline layer of the map: the browser fetches its GeoJSON from this server, signed in as the user."""
    resp = client.get(layer["source"])
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json", layer["source"]
    return resp.get_json()


def _strings(node) -> list[str]:
    """The text of a Dash component tree as the callback sent it, in order."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for child in node for s in _strings(child)]
    if isinstance(node, dict):
        return _strings(node.get("props", {}).get("children")) if "props" in node else []
    return []


def test_the_area_table_lists_the_users_own_villages_with_their_kpis(app, con):
    """A town user's side panel: one row per village of the town (busiest first), each with the KPIs of its own
    events, the same numbers as queries.area_kpis; no village of another town."""
    client = app.server.test_client()
    _sign_in(client, TOWN)
    town = queries.area_scope(con, TOWN.area)
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    out = _call(client, "areas.children", {"dates.start_date": f"{start}", "dates.end_date": f"{last}",
                                           "categories.value": [], "sources.value": []})
    text = _strings(out["areas"]["children"])
    expected = queries.area_kpis(con, queries.EventFilter(start, last, scope=town))
    villages = queries.child_areas(con, town)
    assert list(expected["code"]) == list(villages["code"])
    names = [t for t in text if t in set(villages["name"])]
    assert names == list(expected.sort_values(["registered", "code"], ascending=[False, True])["name"])
    share = kpi("village_share")
    for r in expected.itertuples():  # each row: name, 受理数, 办结率, 超期, 村级办结占比
        i = text.index(r.name)
        assert text[i + 1] == f"{r.registered:,}"
        assert text[i + 4].rstrip("*") == format_value(share, r.village_share)
        assert text[i + 4].endswith("*") == (r.village_share is not None and r.base_village_share < 30)
    others = set(queries.area_names(con).values()) - set(villages["name"]) - {town.name}
    assert not others & set(text)
    # the daily chart: the town's registrations per day, and its backlog
    fig = _call(client, "daily.figure", {"dates.start_date": f"{start}", "dates.end_date": f"{last}",
                                         "categories.value": [], "sources.value": []})["daily"]["figure"]
    bars, backlog = fig["data"][0], fig["data"][1]
    series = queries.daily_series(con, queries.EventFilter(start, last, scope=town))
    assert _numbers(bars["y"]).sum() == series["registered"].sum() == queries.kpis(
        con, queries.EventFilter(start, last, scope=town))["registered"]
    assert list(_numbers(backlog["y"])) == list(series["open"])
    # the villages' rows hold the town's events that are placed to a village
    in_villages = con.execute("SELECT count(*) FROM core.events WHERE town_code = ? AND village_code IS NOT NULL "
                              "AND CAST(reported_at AS DATE) BETWEEN ? AND ?", [town.code, start, last]).fetchone()[0]
    assert expected["registered"].sum() == in_villages > 0


def test_the_hex_export_holds_what_the_map_shows_to_that_user(app, con):
    """CSV and GeoJSON of the event-count layer: the town user's own hexes, with the viewer's small-count rule."""
    import pandas as pd

    client = app.server.test_client()
    _sign_in(client, TOWN)
    town = queries.area_scope(con, TOWN.area)
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    state = {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": ["MD"],
             "sources.value": [], "resolution.value": 9, "layer.value": "counts"}
    expected = queries.hex_counts(con, queries.EventFilter(start, last, categories=("MD",), scope=town), 9,
                                  sensitive_min=3)
    sent = _call(client, "hex-download.data", {"hex-csv.n_clicks": 1, "hex-geojson.n_clicks": None},
                 state)["hex-download"]["data"]
    # the name says what, where, which filter and when (a file passed on keeps what it is)
    assert sent["filename"] == f"六边形受理数_{town.name}_MD_H3-9_{start}_{last}.csv"
    raw = base64.b64decode(sent["content"])
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    frame = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig")
    assert list(frame.columns) == ["H3编号", "六边形级别", "指标", "件数", "镇街", "村（社区）", "中心纬度", "中心经度"]
    assert dict(zip(frame["H3编号"], frame["件数"], strict=True)) == dict(
        zip(expected["cell"], expected["n"], strict=True))
    assert len(frame) > 0 and (frame["六边形级别"] == 9).all() and (frame["指标"] == "受理数").all()
    assert list(frame["件数"]) == sorted(frame["件数"], reverse=True)  # the busiest first, as one reads a table
    assert (frame["镇街"] == town.name).all()  # each hex named for its town and village, as the map's drill-down
    assert set(frame["村（社区）"]) <= set(queries.child_areas(con, town)["name"])
    sent = _call(client, "hex-download.data", {"hex-geojson.n_clicks": 1, "hex-csv.n_clicks": 1},
                 {**state, "categories.value": ["MD10", "MD02"], "sources.value": ["grid"]})["hex-download"]["data"]
    assert sent["filename"] == f"六边形受理数_{town.name}_劳动争议等2类_网格巡查_H3-9_{start}_{last}.geojson"
    geo = json.loads(base64.b64decode(sent["content"]))
    assert geo["onemap"]["筛选"] == "劳动争议等2类、网格巡查" and geo["onemap"]["地区"] == town.name
    narrower = queries.hex_counts(con, queries.EventFilter(start, last, categories=("MD10", "MD02"), sources=("grid",),
                                                           scope=town), 9, sensitive_min=3)
    assert len(geo["features"]) == len(narrower) > 0
    assert sum(f["properties"]["events"] for f in geo["features"]) == narrower["n"].sum()
    assert all(f["geometry"]["type"] == "Polygon" and f["properties"]["town"] == town.name for f in geo["features"])


def test_the_overdue_layer_counts_the_overdue_cases_of_the_kpi(app, con):
    """超期 layer: per hex, the cases registered in the period that are open past their due time at the last build;
    over the located cases it adds up to the KPI strip's 超期, and its export says what it counts."""
    import pandas as pd

    client = app.server.test_client()
    _sign_in(client, COUNTY)  # a handler: no small-count rule, so the hexes add up exactly
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=89)
    inputs = {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [], "sources.value": [],
              "resolution.value": 8, "layer.value": "overdue", "refresh.n_intervals": None}
    out = _call(client, "kpi-overdue.children", inputs)
    hexes = next(t for t in out["map"]["figure"]["data"] if t["type"] == "choroplethmap")
    z = _numbers(hexes["z"])
    located = con.execute(f"SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL AND {queries.OVERDUE} AND "
                          "CAST(reported_at AS DATE) BETWEEN $d1 AND $d2",
                          {"as_of": queries.reference_time(con), "d1": start, "d2": last}).fetchall()[0][0]
    assert 0 < z.sum() == located <= int(out["kpi-overdue"]["children"].replace(",", ""))
    assert "超期" in json.dumps(hexes, ensure_ascii=False)
    state = {k: v for k, v in inputs.items() if k != "refresh.n_intervals"}
    sent = _call(client, "hex-download.data", {"hex-csv.n_clicks": 1, "hex-geojson.n_clicks": None},
                 state)["hex-download"]["data"]
    frame = pd.read_csv(io.BytesIO(base64.b64decode(sent["content"])), encoding="utf-8-sig")
    assert sent["filename"].startswith("六边形超期_") and (frame["指标"] == "超期").all()
    assert frame["件数"].sum() == located


def test_sign_ins_downloads_and_drill_downs_are_written_to_the_access_log(app, demo_settings, con):
    log = demo_settings.logs_dir / "access.jsonl"
    start_at = log.stat().st_size if log.exists() else 0
    client = app.server.test_client()
    _login_form(client, TOWN.name, "guess-1")
    _sign_in(client, TOWN)
    last = queries.date_bounds(con)[1]
    state = {"dates.start_date": f"{last - dt.timedelta(days=27)}", "dates.end_date": f"{last}",
             "categories.value": [], "sources.value": [], "resolution.value": 9, "layer.value": "overdue"}
    _call(client, "hex-download.data", {"hex-geojson.n_clicks": 1, "hex-csv.n_clicks": None}, state)
    cell = queries.hex_counts(con, queries.EventFilter(last - dt.timedelta(days=27), last,
                                                       scope=queries.area_scope(con, TOWN.area)), 9)["cell"].iloc[0]
    _call(client, "detail-body.children", {"map.clickData": {"points": [{"location": cell}]}},
          {k: v for k, v in state.items() if k != "layer.value"})
    village = queries.child_areas(con, queries.area_scope(con, TOWN.area))["code"].iloc[0]
    _call(client, "hex-download.data", {"hex-csv.n_clicks": 1, "hex-geojson.n_clicks": None},
          {**state, "url.search": f"?area={village}"})  # drilled down to one of the town's villages
    client.get("/logout")
    with log.open(encoding="utf-8") as fh:
        fh.seek(start_at)
        lines = [json.loads(line) for line in fh]
    assert [r["action"] for r in lines] == ["sign_in_failed", "sign_in", "export", "drill_down", "export", "sign_out"]
    assert (lines[2]["focus"], lines[3]["focus"], lines[4]["focus"]) == (TOWN.area, TOWN.area, village)
    assert lines[0]["user"] == TOWN.name and "guess-1" not in json.dumps(lines)
    assert all(r["user"] == TOWN.name and r["area"] == TOWN.area for r in lines[1:])
    assert (lines[2]["layer"], lines[2]["format"], lines[2]["resolution"]) == ("overdue", "geojson", 9)
    assert lines[3]["cell"] == cell and lines[3]["listed"] > 0 and lines[3]["handler"] is False
    assert all(r["at"] and r["ip"] == "127.0.0.1" for r in lines)


def test_a_sign_in_needs_the_forms_token_and_repeated_failures_lock_the_name(demo_settings, tmp_path):
    from dashboard.app import create_app
    from dashboard.auth import LOCK_AFTER

    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "users.toml")
    add_user(settings.users_path, "lockme", TOWN.area, "viewer", "the-right-password")
    client = create_app(settings).server.test_client()
    # a post that did not come from this session's form (another site, a script) is refused, right password or not
    forged = client.post("/login", data={"user": "lockme", "password": "the-right-password", "next": "/"})
    assert forged.status_code == 401 and "登录页已过期" in forged.text
    for attempt in range(LOCK_AFTER):
        assert _login_form(client, "lockme", f"wrong-{attempt}").status_code == 401
    locked = _login_form(client, "lockme", "the-right-password")
    assert locked.status_code == 401 and "连续登录失败" in locked.text
    assert client.get("/_dash-layout").status_code == 401
    log = [json.loads(line) for line in (settings.logs_dir / "access.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["action"] for r in log if r.get("user") == "lockme"][-2:] == ["sign_in_failed", "sign_in_locked"]


def test_a_lock_out_outlasts_a_restart_of_the_server(demo_settings, tmp_path):
    """The failed sign-ins are in the access log; a new server process reads the recent ones back, so restarting
    it does not lift a lock-out. Old failures, and failures before a successful sign-in, do not count."""
    from dashboard.app import create_app
    from dashboard.auth import LOCK_AFTER, LOCK_SECONDS

    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "users.toml", home=tmp_path / "home")
    settings.home.mkdir()
    (settings.home / "warehouse").symlink_to(demo_settings.warehouse_path.parent)  # its own access log, same data
    for name in ("locked", "stale", "forgiven"):
        add_user(settings.users_path, name, TOWN.area, "viewer", "the-right-password")
    first = create_app(settings).server.test_client()
    for attempt in range(LOCK_AFTER):
        _login_form(first, "locked", f"wrong-{attempt}")
    # four failures, a success, one more failure: five in the window, but only one since the success
    for password in [*(f"wrong-{i}" for i in range(LOCK_AFTER - 1)), "the-right-password", "wrong-again"]:
        _login_form(first, "forgiven", password)
        first.get("/logout")
    log = settings.logs_dir / "access.jsonl"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOCK_SECONDS + 60)).isoformat(timespec="seconds")
    with log.open("a", encoding="utf-8") as fh:
        for _ in range(LOCK_AFTER):
            fh.write(json.dumps({"at": old, "action": "sign_in_failed", "user": "stale"}) + "\n")
        fh.write('{"at": "2026-12-02T10:00:00+00:00", "act')  # a line cut short
    restarted = create_app(settings).server.test_client()
    locked = _login_form(restarted, "locked", "the-right-password")
    assert locked.status_code == 401 and "连续登录失败" in locked.text
    for name in ("stale", "forgiven"):
        assert _login_form(restarted, name, "the-right-password").status_code == 302, name
        restarted.get("/logout")


def test_sign_in_cookies_are_http_only_and_https_only_when_configured(demo_settings):
    from dashboard.app import create_app

    plain = create_app(demo_settings).server.test_client().get("/login").headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    secure = create_app(dataclasses.replace(demo_settings, secure_cookies=True)).server.test_client()
    assert "Secure" in secure.get("/login").headers["Set-Cookie"]


def test_a_user_changes_their_own_password(demo_settings, tmp_path):
    from dashboard.app import create_app
    from onemap.access import load_users

    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "users.toml")
    add_user(settings.users_path, "pw1", TOWN.area, "viewer", "first-password", display="测试")
    client = create_app(settings).server.test_client()
    assert client.get("/password").status_code == 302  # not signed in: to the sign-in page
    _login_form(client, "pw1", "first-password")

    def change(old, new, again):
        page = client.get("/password")
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        return client.post("/password", data={"old": old, "new": new, "again": again, "token": token})

    assert "两次输入的新密码不一致" in change("first-password", "second-password", "second-passw0rd").text
    assert "至少 8 个字符" in change("first-password", "short", "short").text
    wrong = change("not-it-at-all", "second-password", "second-password")
    assert wrong.status_code == 400 and "原密码不正确" in wrong.text
    done = change("first-password", "second-password", "second-password")
    assert done.status_code == 200 and "密码已修改" in done.text
    user = load_users(settings.users_path)["pw1"]
    assert user.check("second-password") and not user.check("first-password")
    assert (user.area, user.role, user.display) == (TOWN.area, "viewer", "测试")  # only the password changed
    client.get("/logout")
    assert _login_form(client, "pw1", "first-password").status_code == 401
    assert _login_form(client, "pw1", "second-password").status_code == 302


def test_an_analyst_marks_an_alert_and_the_verdict_reaches_the_cli(demo_settings, con, tmp_path, capsys):
    """属实 / 误报 on the map's alert list: only on an alert the user can see, kept beside the warehouse, and shown
    by `onemap alerts`."""
    from dashboard.app import create_app
    from onemap.cli import main
    from onemap.reviews import keys_of, latest_reviews

    shown = queries.alerts(con, window_days=7, limit=200, with_ramps=True)
    shown = shown[shown["window_end"] == shown["window_end"].iloc[0]].drop_duplicates(["place", "category_code"])
    def keys_in(town):
        return keys_of(shown[shown["cell"].isin(queries.cells_in_scope(con, shown["cell"], 8,
                                                                       queries.Scope("town", town)))])

    town = next(t for t in queries.child_areas(con, None)["code"] if len(keys_in(t)))
    mine = keys_in(town)
    other = set(keys_of(shown)) - set(mine)
    settings = dataclasses.replace(demo_settings, users_file=tmp_path / "users.toml")
    add_user(settings.users_path, "analyst", town, "viewer", "analyst-password", display="分析员甲")
    client = create_app(settings).server.test_client()
    _login_form(client, "analyst", "analyst-password")
    layout = _text(client.get("/_dash-layout"))
    assert all(k in layout for k in mine) and not any(k in layout for k in other)

    def press(key, verdict):
        deps = client.get("/_dash-dependencies").get_json()
        dep = next(d for d in deps if "review-status" in d["output"])
        body = {"output": dep["output"],
                "outputs": [[{"id": {"key": k, "type": "review-status"}, "property": "children"} for k in mine],
                            [{"id": {"key": k, "type": "review-status"}, "property": "className"} for k in mine],
                            {"id": "review-record", "property": "children"}],
                "inputs": [[{"id": {"key": k, "type": "review", "verdict": v}, "property": "n_clicks",
                             "value": 1 if (k, v) == (key, verdict) else None}
                            for k in mine for v in ("confirmed", "false_alarm")]],
                "state": [{"id": "url", "property": "search", "value": ""}], "changedPropIds": [json.dumps({"key": key, "type": "review", "verdict": verdict},
                                                           separators=(",", ":"), sort_keys=True) + ".n_clicks"]}
        return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")

    before = latest_reviews(settings.reviews_path)
    resp = press(mine.iloc[0], "confirmed")
    assert resp.status_code == 200
    shown = json.dumps(resp.get_json(), ensure_ascii=False)
    assert "已核实：属实（分析员甲）" in shown  # the account's name as colleagues know it, not its login
    assert '"review confirmed"' in shown and '"review false_alarm"' not in shown
    assert latest_reviews(settings.reviews_path)[mine.iloc[0]]["user"] == "analyst"
    # the panel now says how often the town's recent alerts were right, with the interval
    from onemap.reviews import recent_record

    record = recent_record(con, queries.date_bounds(con)[1], queries.area_scope(con, town), settings.reviews_path)
    assert "（现有预警最早的一天）至" in record and "属实率" in record and "95% 区间" in record
    assert record in shown  # at once, beside the verdict, not only after a reload
    assert record in _text(client.get("/_dash-layout"))
    assert "演示数据：村居与网格边界为合成数据" in _text(client.get("/_dash-layout"))  # the demo's badge
    if len(mine) > 1:  # 误报 is not shown as a success (its own class: grey, not green)
        assert '"review false_alarm"' in json.dumps(press(mine.iloc[1], "false_alarm").get_json())
    if other:  # another town's alert, asked for by hand: refused, nothing written
        assert press(sorted(other)[0], "false_alarm").status_code == 204
        assert latest_reviews(settings.reviews_path).get(sorted(other)[0]) == before.get(sorted(other)[0])
    assert main(["--home", str(demo_settings.home), "alerts", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    reviewed = [r for r in records if r["review"] == "confirmed" and r["reviewed_by"] == "analyst"]
    assert reviewed and any(r["cell"] == mine.iloc[0].split("|")[1] for r in reviewed)


def test_a_broken_users_file_stops_the_server_at_start_and_says_where(demo_settings, tmp_path, monkeypatch, capsys):
    from onemap.cli import main

    broken = tmp_path / "users.toml"
    broken.write_text('[users.a]\narea = "441502001"\nrole = "chief"\npassword = "x"\n', encoding="utf-8")
    monkeypatch.setenv("ONEMAP_ACCESS__USERS_FILE", str(broken))
    assert main(["--home", str(demo_settings.home), "serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "role 'chief'" in err


def test_a_town_opens_one_hex_size_finer_than_the_county_and_a_village_two(app, demo_settings):
    from dashboard.app import _default_resolution

    opened = {}
    for account in DEMO_ACCOUNTS:
        client = app.server.test_client()
        _sign_in(client, account)
        layout = client.get("/_dash-layout").get_json()

        def find(node):
            if isinstance(node, dict):
                if node.get("props", {}).get("id") == "resolution":
                    return node["props"]["value"]
                return next((v for v in map(find, node.values()) if v is not None), None)
            if isinstance(node, list):
                return next((v for v in map(find, node) if v is not None), None)
            return None

        opened[account.name] = find(layout)
    assert opened == {"county": 8, "xingang": 9, "haijing": 10}
    # never finer than the finest configured resolution
    assert _default_resolution(dataclasses.replace(demo_settings, h3_default=10), queries.Scope("village", "x")) == 10


def test_the_backlog_panel_is_the_users_own_by_stage(app, con):
    """积案 in the side panel: a town user's open cases at the last build by stage and age band, the numbers of
    queries.backlog for the town (the category and source filters apply; the period does not)."""
    client = app.server.test_client()
    _sign_in(client, TOWN)
    town = queries.area_scope(con, TOWN.area)
    as_of = queries.reference_time(con)
    day = as_of.date()
    for sources in ([], ["police"]):
        out = _call(client, "backlog.children", {"categories.value": [], "sources.value": sources})
        text = _strings(out["backlog"]["children"])
        assert out["backlog-title"]["children"] == f"积案：截至 {format_moment(as_of)} 在办案件按阶段与时长"
        assert format_moment(as_of) == f"{as_of - dt.timedelta(days=1):%m-%d} 日终"  # the demo builds at midnight
        expected = queries.backlog(con, queries.EventFilter(day, day, sources=tuple(sources), scope=town), as_of,
                                   total=True)
        for r in expected.itertuples():  # each row: stage, the four bands, 在办, 超期
            i = text.index(r.name)
            assert text[i + 1:i + 7] == [f"{n:,}" for n in (r.days_0_7, r.days_8_30, r.days_31_90, r.days_over_90,
                                                            r.open, r.overdue)], r.name
        assert f"在办最久的已 {int(expected['oldest_days'].iloc[-1])} 天" in " ".join(text)
    county = queries.backlog(con, queries.EventFilter(day, day), as_of, total=True)
    assert expected["open"].iloc[-1] < county["open"].iloc[-1]  # the town's, not the county's


def test_the_backlog_playback_sends_one_frame_per_day_as_the_user_may_see_it(app, con):
    """积案回放: the map carries one frame per day of the period, each the open cases per hex at that day's end within
    the town user's area and with the non-handler's rule on sensitive events; it opens on the last day, and the
    layer's export is that day's counts."""
    import pandas as pd

    client = app.server.test_client()
    _sign_in(client, TOWN)
    town = queries.area_scope(con, TOWN.area)
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=13)
    inputs = {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [], "sources.value": [],
              "resolution.value": 9, "layer.value": "backlog", "refresh.n_intervals": None}
    fig = _call(client, "map.figure", inputs)["map"]["figure"]
    flt = queries.EventFilter(start, last, scope=town)
    steps = queries.backlog_steps(flt, queries.reference_time(con))
    expected = queries.backlog_cells(con, flt, 9, steps, sensitive_min=3)
    assert len(fig["frames"]) == len(steps) == 14
    assert [f["name"] for f in fig["frames"]] == [f"{(s - pd.Timedelta(seconds=1)):%m-%d}" for s in steps]
    hexes = next(t for t in fig["data"] if t["type"] == "choroplethmap")
    cells = list(hexes["locations"])
    assert set(cells) == set(expected["cell"]) and set(cells) <= set(
        queries.hex_counts(con, dataclasses.replace(flt, start=queries.EARLIEST), 9)["cell"])
    for frame, step in zip(fig["frames"], steps, strict=True):
        z = pd.Series(_numbers(frame["data"][0]["z"]), index=cells, dtype=float).dropna()
        assert z.astype(int).sort_index().to_dict() == \
            expected[expected["as_of"] == step].set_index("cell")["n"].sort_index().to_dict()
        # each frame says its day's total, and keeps the map's notes
        said = json.dumps(frame["layout"]["annotations"], ensure_ascii=False)
        assert f"{frame['name']} 日终积案 {int(z.sum()):,} 件" in said and "不论何时受理" in said
    assert fig["layout"]["sliders"][0]["active"] == len(steps) - 1
    shown = pd.Series(_numbers(hexes["z"]), index=cells, dtype=float).dropna()
    assert shown.sum() == expected[expected["as_of"] == steps[-1]]["n"].sum() > 0
    assert "不论何时受理" in json.dumps(fig["layout"]["annotations"], ensure_ascii=False)
    state = {k: v for k, v in inputs.items() if k != "refresh.n_intervals"}
    sent = _call(client, "hex-download.data", {"hex-csv.n_clicks": 1, "hex-geojson.n_clicks": None},
                 state)["hex-download"]["data"]
    exported = pd.read_csv(io.BytesIO(base64.b64decode(sent["content"])), encoding="utf-8-sig")
    assert sent["filename"].startswith("六边形积案_") and (exported["指标"] == "积案").all()
    assert exported.set_index("H3编号")["件数"].to_dict() == shown.astype(int).to_dict()


def test_the_drill_down_says_how_many_events_the_hex_holds_not_only_how_many_are_listed(app, con):
    """A busy hex holds more events than the list shows (200): the panel gives the hex's total — the number
    on the map — and how many of them are confidential and so only counted (the county account handles cases,
    so it is shown the sensitive-flag cases; a viewing role is not: queries.cell_event_counts)."""
    from onemap.h3sql import h3_parent_sql

    first, last = queries.date_bounds(con)
    cell, total, confidential, sensitive = con.execute(f"""
        SELECT {h3_parent_sql('h3_cell', 7)} AS c, count(*), count(*) FILTER (WHERE confidential),
               count(*) FILTER (WHERE confidential OR list_has_any(coalesce(flags, []), $s))
        FROM core.events WHERE h3_cell IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1""",
                                                   {"s": queries.SENSITIVE_FLAGS}).fetchall()[0]
    assert total - sensitive > 200 and 0 < confidential < sensitive  # the demo's busiest res-7 hex, all days
    client = app.server.test_client()
    _sign_in(client, COUNTY)
    out = _call(client, "detail-body.children", {"map.clickData": {"points": [{"location": format(int(cell), "x")}]}},
                {"dates.start_date": f"{first}", "dates.end_date": f"{last}", "categories.value": [],
                 "sources.value": [], "resolution.value": 7})
    where, head = _strings(out["detail-body"]["children"])[:2]
    assert f"共 {total} 条，列出最新 200 条" in head and f"另有 {confidential} 条保密事件" in head, head
    # the heading names the hex's town and village (the raw H3 id only on hover)
    place = queries.cell_places(con, [format(int(cell), "x")], 7)[format(int(cell), "x")]
    assert place and where == f"{place}六边形（H3-7）", where
    assert json.dumps(out).count('"type": "Li"') == 200
    flt, hexid = queries.EventFilter(first, last), format(int(cell), "x")
    assert queries.cell_event_counts(con, flt, hexid, 7, handler=True) == {"listable": total - confidential,
                                                                          "hidden": confidential}
    assert queries.cell_event_counts(con, flt, hexid, 7) == {"listable": total - sensitive, "hidden": sensitive}


def test_the_hot_spot_layer_says_what_it_does_not_follow_and_keeps_the_nearest_resolution(app, con):
    """Hot spots are scored by the build (26 weeks, every category and source): with a category chosen and the
    finest hex size, the map shows the nearest scored size (H3-9, not the coarsest) and says both."""
    import h3

    client = app.server.test_client()
    _sign_in(client, COUNTY)
    first, last = queries.date_bounds(con)
    assert queries.hotspot_resolutions(con) == [8, 9]
    inputs = {"dates.start_date": f"{last - dt.timedelta(days=27)}", "dates.end_date": f"{last}",
              "sources.value": [], "layer.value": "hotspots", "refresh.n_intervals": None}
    out = _call(client, "map.figure", {**inputs, "categories.value": ["neighbour"], "resolution.value": 10})
    figure = out["map"]["figure"]
    note = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "不是对下周的预测" in note and "不随所选时段、类别变化" in note and "热点按 H3-9 计算" in note, note
    cells = [c for t in figure["data"] if t["type"] == "choroplethmap" for c in t["locations"]]
    assert cells and {h3.get_resolution(c) for c in cells} == {9}
    plain = _call(client, "map.figure", {**inputs, "categories.value": [], "resolution.value": 8})
    note = " ".join(a["text"] for a in plain["map"]["figure"]["layout"]["annotations"])
    assert "不随所选时段变化" in note and "H3-" not in note


def test_events_without_a_point_are_counted_in_an_unplaced_row_and_named_on_the_map(app, con):
    """Events placed by address only to a village (no grid, no point) count in the KPIs but have no hex: the
    map says how many, so that its hexes plus that number make the KPI; a village's grid table ends with a
    未定位 row, so that its rows add up to the village's KPI."""
    from dashboard.app import _area_table

    client = app.server.test_client()
    _sign_in(client, COUNTY)
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    out = _call(client, "map.figure", {"dates.start_date": f"{start}", "dates.end_date": f"{last}",
                                       "categories.value": [], "sources.value": [], "resolution.value": 9,
                                       "layer.value": "counts", "refresh.n_intervals": None})
    hexes = next(t for t in out["map"]["figure"]["data"] if t["type"] == "choroplethmap")
    note = " ".join(a["text"] for a in out["map"]["figure"]["layout"]["annotations"])
    off = int(re.search(r"另有 ([\d,]+) 件只定位到镇街或村居", note).group(1).replace(",", ""))
    registered = int(out["kpi-registered"]["children"].replace(",", ""))
    assert off > 0 and _numbers(hexes["z"]).sum() + off == registered

    village = con.execute("SELECT village_code FROM core.events WHERE grid_code IS NULL AND village_code IS NOT NULL "
                          "AND CAST(reported_at AS DATE) BETWEEN ? AND ? GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                          [start, last]).fetchone()[0]
    flt = queries.EventFilter(start, last, scope=queries.area_scope(con, village))
    grids = queries.area_kpis(con, flt)
    assert grids["name"].iloc[-1] == queries.UNPLACED and grids["code"].iloc[-1] is None
    assert grids["registered"].sum() == queries.kpis(con, flt)["registered"]
    from plotly.utils import PlotlyJSONEncoder

    text = _strings(json.loads(json.dumps(_area_table(grids), cls=PlotlyJSONEncoder)))
    names = [t for t in text if t in set(grids["name"])]
    assert names[-1] == queries.UNPLACED and len(names) == len(grids)


def test_an_empty_selection_says_so_on_the_map(app, con):
    client = app.server.test_client()
    _sign_in(client, COUNTY)
    last = queries.date_bounds(con)[1]
    out = _call(client, "map.figure", {"dates.start_date": f"{last}", "dates.end_date": f"{last}",
                                       "categories.value": ["no-such-category"], "sources.value": [],
                                       "resolution.value": 9, "layer.value": "overdue", "refresh.n_intervals": None})
    figure = out["map"]["figure"]
    assert not [t for t in figure["data"] if t["type"] == "choroplethmap"]
    assert "所选条件下没有超期可显示" in " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert out["kpi-registered"]["children"] == "0"


def test_drilling_down_to_a_town_or_village_stays_inside_the_viewers_area(app, con):
    """?area=CODE (the area table's links) narrows every view to a town or village inside the viewer's area;
    a code outside it is ignored, on the server."""
    last = queries.date_bounds(con)[1]
    start = last - dt.timedelta(days=27)
    town = queries.area_scope(con, TOWN.area)
    village = queries.child_areas(con, town).iloc[0]
    other = next(c for c in queries.child_areas(con, None)["code"] if c != town.code)
    base = {"dates.start_date": f"{start}", "dates.end_date": f"{last}", "categories.value": [],
            "sources.value": [], "resolution.value": 9, "layer.value": "counts", "refresh.n_intervals": None}

    def registered(scope):
        return f"{int(queries.kpis(con, queries.EventFilter(start, last, scope=scope))['registered']):,}"

    county = app.server.test_client()
    _sign_in(county, COUNTY)
    out = _call(county, "map.figure", {**base, "url.search": f"?area={town.code}"})
    assert out["kpi-registered"]["children"] == registered(town) != registered(None)
    layers = [{f["id"] for f in _outline(county, layer)["features"]} for layer in out["map"]["figure"]["layout"]["map"]["layers"]]
    assert {town.code} in layers  # the town's own outline and villages, fitted to the town
    fit = out["map"]["figure"]["layout"]["meta"]["fit"]
    assert list(queries.scope_shape(con, town).bounds) == pytest.approx(fit, abs=1e-5)
    panel = _call(county, "areas.children", {**base, "url.search": f"?area={town.code}"})
    text = _strings(panel["areas"]["children"])
    assert panel["areas-title"]["children"] == "各村（社区）（所选时段）"
    assert text[:3] == ["汕尾市城区", " › ", town.name]  # the way back up, then the town's villages
    assert village["name"] in text and f"?area={village['code']}" in json.dumps(panel)
    # down to a village: its grids, named, not links (a grid is not an area one can drill to)
    panel = _call(county, "areas.children", {**base, "url.search": f"?area={village['code']}"})
    assert _strings(panel["areas"]["children"])[:5] == ["汕尾市城区", " › ", town.name, " › ", village["name"]]
    assert panel["areas-title"]["children"] == "各网格（所选时段）"

    # the page title, the alerts and repeat places follow the drill-down too
    lists = _call(county, "alerts.children", {"url.search": f"?area={village['code']}"})
    assert lists["page-title"]["children"] == f"民情地图 · 汕尾市城区 · {town.name} · {village['name']}"
    lists = _call(county, "alerts.children", {"url.search": f"?area={town.code}"})
    assert lists["page-title"]["children"] == f"民情地图 · 汕尾市城区 · {town.name}"
    shown = json.dumps(lists, ensure_ascii=False)
    mine = queries.alerts(con, window_days=7, limit=200, with_ramps=True, scope=town)
    others = queries.alerts(con, window_days=7, limit=200, with_ramps=True)
    others = others[~others["place"].isin(mine["place"])]
    assert len(others) > 0  # the county has alerts outside the town: they must not be listed
    assert not [p for p in others["place"].dropna().unique() if f"{p} · 实际" in shown]
    assert all(f"{r.place or r.grid_code} · {r.n_events} 起" in shown
               for r in queries.repeat_places(con, limit=5, scope=town).itertuples())
    assert f"（截至 {format_moment(queries.reference_time(con))} 的近" in shown  # whose window ends when
    # the secondary outlier cells: the town's own, named, scored, and said to be secondary by the heading
    layout = json.dumps(county.get("/_dash-layout").get_json(), ensure_ascii=False)
    assert "画像异常（次要信号）" in layout and "没有显著性检验，不是预警" in layout
    theirs = queries.outlier_cells(con, limit=5, scope=town)
    county_wide = queries.outlier_cells(con, limit=50)
    assert len(theirs) and len(county_wide) > len(theirs)
    assert all(f"{r.place} · 异常度 {r.outlier_score:.2f}" in shown for r in theirs.itertuples())
    assert all(town.name in r.place for r in theirs.itertuples())
    assert not [r.place for r in county_wide.itertuples() if r.cell not in set(theirs["cell"])
                and f"{r.place} · 异常度 {r.outlier_score:.2f}" in shown]

    # a town user asking for another town, or for a code that is no area, sees its own town
    town_user = app.server.test_client()
    _sign_in(town_user, TOWN)
    for search in (f"?area={other}", "?area=441502", "?area=nonsense", f"?area={village['code']}0001"):
        out = _call(town_user, "map.figure", {**base, "url.search": search})
        assert out["kpi-registered"]["children"] == registered(town), search
    out = _call(town_user, "map.figure", {**base, "url.search": f"?area={village['code']}"})
    assert out["kpi-registered"]["children"] == registered(queries.area_scope(con, village["code"]))


def test_outline_layers_are_served_once_and_only_inside_the_viewers_area(app, con):
    """The map's outlines are URLs of this server (not ~300 KB of grid outlines in every figure): fetched with
    the user's session, cacheable, and refused for an area outside the user's own."""
    town = queries.area_scope(con, TOWN.area)
    other = next(c for c in queries.child_areas(con, None)["code"] if c != town.code)
    client = app.server.test_client()
    assert client.get(f"/geo/{town.code}/grid.geojson").status_code in (302, 401)  # not signed in
    _sign_in(client, TOWN)
    grids = client.get(f"/geo/{town.code}/grid.geojson")
    assert grids.status_code == 200 and "max-age" in grids.headers["Cache-Control"]
    assert all(f["id"].startswith(town.code) for f in grids.get_json()["features"])
    for path in (f"/geo/{other}/grid.geojson", "/geo/county/town.geojson", f"/geo/{town.code}/nothing.geojson"):
        assert client.get(path).status_code == 404, path
    last = queries.date_bounds(con)[1]
    out = _call(client, "map.figure", {"dates.start_date": f"{last}", "dates.end_date": f"{last}",
                                       "categories.value": [], "sources.value": [], "resolution.value": 9,
                                       "layer.value": "counts", "refresh.n_intervals": None})
    sources = [layer["source"] for layer in out["map"]["figure"]["layout"]["map"]["layers"]]
    assert sources and all(isinstance(src, str) and src.startswith(f"/geo/{town.code}/") for src in sources)
    assert len(json.dumps(out)) < 200_000


def test_hexes_too_small_for_the_area_say_so(app, con):
    """H3-10 over the whole county draws specks at the county's zoom: the map says to zoom in or which size suits
    it; at the county's own size (H3-8), and at H3-10 in a village, it says nothing of the kind."""
    client = app.server.test_client()
    _sign_in(client, COUNTY)
    last = queries.date_bounds(con)[1]
    village = queries.child_areas(con, queries.area_scope(con, TOWN.area))["code"].iloc[0]

    def notes(resolution, search=""):
        out = _call(client, "map.figure", {"dates.start_date": f"{last - dt.timedelta(days=27)}",
                                           "dates.end_date": f"{last}", "categories.value": [], "sources.value": [],
                                           "url.search": search, "resolution.value": resolution,
                                           "layer.value": "counts", "refresh.n_intervals": None})
        return json.dumps(out["map"]["figure"]["layout"].get("annotations", []), ensure_ascii=False)

    assert "H3-10 六边形在汕尾市城区全图中很小：放大地图查看，或选 H3-8" in notes(10)
    assert "全图中很小" not in notes(8)
    assert "全图中很小" not in notes(10, f"?area={village}")


def test_a_hex_is_named_for_its_town_and_village_on_hover(app, con):
    """Hovering a hex says where it is (镇街 + 村居, by the same rule as alerts and the drill-down), not only its
    H3 id."""
    client = app.server.test_client()
    _sign_in(client, TOWN)
    last = queries.date_bounds(con)[1]
    out = _call(client, "map.figure", {"dates.start_date": f"{last - dt.timedelta(days=27)}", "dates.end_date": f"{last}",
                                       "categories.value": [], "sources.value": [], "url.search": "",
                                       "resolution.value": 9, "layer.value": "counts", "refresh.n_intervals": None})
    hexes = next(t for t in out["map"]["figure"]["data"] if t["type"] == "choroplethmap")
    town = queries.area_scope(con, TOWN.area)
    names = queries.cell_places(con, hexes["locations"], 9)
    inside = queries.cells_in_scope(con, hexes["locations"], 9, town)
    assert 0 < len(inside) < len(names)  # the town's map has hexes on its edge whose home is a neighbour
    assert hexes["customdata"] == [names[c] if c in inside else f"{town.name}（边缘）" for c in hexes["locations"]]
    assert all(name.startswith(town.name) for name in hexes["customdata"])
    assert "%{customdata}" in hexes["hovertemplate"]
    # the header says how far the data reaches, and when the build that counts open and overdue ran
    end, as_of = queries.data_end(con), queries.reference_time(con)
    assert as_of - end < dt.timedelta(hours=1)  # the demo builds when its exports were taken: one time is enough
    assert out["asof"]["children"] == f"数据截至 {end:%Y-%m-%d %H:%M}"
    from dashboard.app import _as_of_text

    class Later:  # a build a day after the data: the header says both
        def execute(self, sql, params=None):
            return con.execute(sql.replace("max(as_of)", "max(as_of) + INTERVAL 1 DAY"), params or [])

    assert _as_of_text(Later()) == f"数据截至 {end:%Y-%m-%d %H:%M} · {as_of + dt.timedelta(days=1):%m-%d %H:%M} 更新"


def test_a_hex_list_follows_its_layer_and_a_change_clears_it(app, con):
    """On the 超期 layer a hex's list is its overdue cases — as many as the hex shows, longest overdue first, each
    saying by how many days — not every event registered there; a filter change clears the list and the click."""
    client = app.server.test_client()
    _sign_in(client, COUNTY)  # a handler: every case listable, so the list is the map's number
    last = queries.date_bounds(con)[1]
    base = {"dates.start_date": f"{last - dt.timedelta(days=89)}", "dates.end_date": f"{last}",
            "categories.value": [], "sources.value": [], "url.search": "", "resolution.value": 8,
            "layer.value": "overdue"}
    flt = queries.EventFilter(last - dt.timedelta(days=89), last)
    counts = queries.hex_counts(con, flt, 8, measure="overdue").sort_values("n", ascending=False)
    cell, n = counts.iloc[0]["cell"], int(counts.iloc[0]["n"])
    registered = int(queries.hex_counts(con, flt, 8).set_index("cell")["n"][cell])
    assert 1 < n < registered
    out = _call(client, "detail-body.children", {"map.clickData": {"points": [{"location": cell}]}, **base})
    text = _strings(out["detail-body"]["children"])
    assert f"超期共 {n} 条，列出 {n} 条" in text[1]
    marks = [t for t in text if t.startswith(" 超期 ")]
    days = [int(t.split()[1]) for t in marks]
    assert len(marks) == n and days == sorted(days, reverse=True) and min(days) >= 0
    # another filter: the list is no longer this hex's under the map, so it goes, and the click with it
    changed = {"sources.value": ["police"]}  # the first key: the input that changed
    out = _call(client, "detail-body.children", {**changed, **{k: v for k, v in base.items() if k not in changed},
                                                 "map.clickData": {"points": [{"location": cell}]}})
    assert "点击地图上的六边形" in json.dumps(out["detail-body"], ensure_ascii=False)
    assert out["map"]["clickData"] is None


def test_the_alert_panel_lists_one_alert_a_place_and_says_how_many_more_there_are(demo_settings, con):
    """A category alert on a hex and on its neighbourhood name one place: the panel lists the stronger; when
    more alerts pass than it lists, it says how many (none is dropped silently)."""
    from dashboard.app import _alert_list, _visible_alerts
    from dashboard.auth import Viewer
    from dashboard.data import DashboardData

    data = DashboardData(demo_settings)
    viewer = Viewer("county", queries.COUNTY, handler=True)
    visible = _visible_alerts(data, viewer)
    assert len(visible) >= 2 and not visible.duplicated(["place", "category_code"]).any()
    text = json.dumps(_alert_list(data, viewer, limit=1).to_plotly_json(), ensure_ascii=False, default=str)
    assert f"另有 {len(visible) - 1} 条较弱的预警未列出" in text
    assert "另有" not in json.dumps(_alert_list(data, viewer, limit=len(visible)).to_plotly_json(),
                                  ensure_ascii=False, default=str)


def test_the_header_names_a_village_account_once(app, con):
    """A village's account is called after its village (海景社区): the header reads '海景社区 · 查看', not
    '海景社区 · 海景社区 · 查看'."""
    client = app.server.test_client()
    _sign_in(client, VILLAGE)
    village = queries.area_scope(con, VILLAGE.area)
    layout = _text(client.get("/_dash-layout"))
    assert f"{village.name} · 查看" in layout and f"{village.name} · {village.name}" not in layout


def test_a_deployments_own_tiles_lie_under_the_map_served_from_this_machine(demo_settings, con, tmp_path,
                                                                             monkeypatch, capsys):
    """[map] basemap: the tiles come from this server's /basemap route (signed in, as every page), the figure's
    style names that route and nothing else, a tile the set lacks is an empty answer; tiles that miss the
    county stop the server at start and say so. Without a basemap the style has none."""
    from dashboard.app import create_app
    from dashboard.data import DashboardData
    from onemap.cli import main
    from tests.geodata.tiles import covering, make_mbtiles, png

    west, south, east, north = DashboardData(demo_settings).bounds(queries.COUNTY)
    tiles = make_mbtiles(tmp_path / "county.mbtiles", (west, south, east, north), zooms=range(9, 13))
    app = create_app(dataclasses.replace(demo_settings, basemap=tiles, basemap_opacity=0.5))
    client = app.server.test_client()
    z, x, y = covering((west, south, east, north), [11])[0]
    assert client.get(f"/basemap/{z}/{x}/{y}").status_code in (302, 401)  # not signed in
    _sign_in(client, COUNTY)
    tile = client.get(f"/basemap/{z}/{x}/{y}")
    assert tile.status_code == 200 and tile.mimetype == "image/png" and tile.data == png((200, 0, 200))
    assert client.get(f"/basemap/{z}/{x}/{y + 40}").status_code == 204
    assert client.get("/basemap/14/0/0").status_code == 204  # deeper than the set: the map enlarges zoom 12
    last = queries.date_bounds(con)[1]
    out = _call(client, "map.figure", {"dates.start_date": f"{last}", "dates.end_date": f"{last}",
                                       "categories.value": [], "sources.value": [], "resolution.value": 8,
                                       "layer.value": "counts", "refresh.n_intervals": None})
    style = out["map"]["figure"]["layout"]["map"]["style"]
    assert style["sources"]["basemap"] == {"type": "raster", "tiles": ["/basemap/{z}/{x}/{y}"], "tileSize": 256,
                                           "minzoom": 9, "maxzoom": 12, "attribution": "测试底图"}
    assert [layer["id"] for layer in style["layers"]] == ["background", "basemap"]  # under hexes and outlines
    assert style["layers"][1]["paint"] == {"raster-opacity": 0.5}

    plain = create_app(demo_settings).server.test_client()
    _sign_in(plain, COUNTY)
    assert plain.get(f"/basemap/{z}/{x}/{y}").status_code == 204
    out = _call(plain, "map.figure", {"dates.start_date": f"{last}", "dates.end_date": f"{last}",
                                      "categories.value": [], "sources.value": [], "resolution.value": 8,
                                      "layer.value": "counts", "refresh.n_intervals": None})
    assert "basemap" not in json.dumps(out["map"]["figure"]["layout"]["map"]["style"])

    elsewhere = make_mbtiles(tmp_path / "beijing.mbtiles", (116.3, 39.8, 116.5, 40.0), zooms=[10])
    monkeypatch.setenv("ONEMAP_MAP__BASEMAP", str(elsewhere))
    assert main(["--home", str(demo_settings.home), "serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert str(elsewhere) in err and "not the county" in err
    monkeypatch.setenv("ONEMAP_MAP__BASEMAP_CRS", "gcj02")
    assert main(["--home", str(demo_settings.home), "serve", "--port", "1"]) == 2
    assert "GCJ02" in capsys.readouterr().err


def test_serving_beyond_this_machine_without_secure_cookies_warns(demo_settings, tmp_path, monkeypatch, capsys):
    """With accounts, `serve --host 0.0.0.0` starts; without [serve] secure_cookies it says that passwords cross
    the network in clear unless an HTTPS proxy is in front (waitress is not started here)."""
    import waitress

    from onemap.access import add_user
    from onemap.cli import main

    users = tmp_path / "users.toml"
    add_user(users, "a1", "441502001", "viewer", "a-long-password")
    monkeypatch.setenv("ONEMAP_ACCESS__USERS_FILE", str(users))
    started = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: started.append(kw))
    assert main(["--home", str(demo_settings.home), "serve", "--host", "0.0.0.0", "--port", "8099"]) == 0
    assert started and started[0]["host"] == "0.0.0.0"
    assert "secure_cookies = false" in capsys.readouterr().err
    monkeypatch.setenv("ONEMAP_SERVE__SECURE_COOKIES", "true")
    assert main(["--home", str(demo_settings.home), "serve", "--host", "0.0.0.0", "--port", "8099"]) == 0
    assert "WARNING" not in capsys.readouterr().err
