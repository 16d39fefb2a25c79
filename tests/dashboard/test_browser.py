"""Drive the real map page in Debian's Chromium (Playwright, no downloaded browser)."""
import datetime as dt
import threading
from urllib.parse import urlparse

import pytest
from werkzeug.serving import make_server

from onemap.access import DEMO_ACCOUNTS

pytestmark = pytest.mark.browser

COUNTY, TOWN, VILLAGE = (next(a for a in DEMO_ACCOUNTS if a.name == n) for n in ("county", "xingang", "haijing"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def server(demo_settings):
    from dashboard.app import create_app

    app = create_app(demo_settings)
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _sign_in(page, base: str, account) -> None:
    """Open the map: the server sends the browser to the sign-in page first; fill it in like a user."""
    page.goto(base)
    page.wait_for_url("**/login?next=/", timeout=30_000)
    page.fill("#user", account.name)
    page.fill("#password", account.password)
    page.click("#sign-in")
    page.wait_for_selector("#map .maplibregl-canvas", timeout=60_000)


def _kpis(page) -> dict[str, str]:
    return {k: page.inner_text(f"#kpi-{k}") for k in ("registered", "closed_rate", "resolved_rate", "overdue")}


def test_map_draws_hexes_filters_change_kpis_and_nothing_leaves_localhost(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, server, COUNTY)
    page.wait_for_function("document.querySelector('#kpi-registered').innerText !== '—'", timeout=30_000)
    # the hex layer is drawn: the choropleth trace holds cells, and MapLibre has painted its canvas
    n_cells = page.evaluate("document.querySelector('#map .js-plotly-plot').data"
                            ".find(t => t.type === 'choroplethmap').locations.length")
    assert n_cells > 20
    page.wait_for_timeout(1500)
    page.screenshot(path=str(tmp_path / "map.png"))
    assert "民情地图" in page.inner_text("header")
    # the map toolbar speaks Chinese and has no "Share chart" (plotly.js's default posts to cloud.plotly.com)
    page.hover("#map")
    titles = page.evaluate("Array.from(document.querySelectorAll('#map .modebar-btn')).map(b => b.dataset.title)")
    assert "下载为 PNG 图片" in titles and "复位视图" in titles, titles
    assert not [t for t in titles if t.isascii()], f"untranslated toolbar buttons: {titles}"
    assert page.locator("#map .modebar-btn[data-title*='Share'], #map .modebar-btn[data-title*='分享']").count() == 0
    # the date picker's calendar is in Chinese (the vendored date-fns zh-CN locale), and readable on the dark theme
    page.click("#dates")
    page.wait_for_selector(".dash-datepicker-calendar-wrapper", timeout=10_000)
    calendar = page.inner_text(".dash-datepicker-calendar-wrapper")
    assert "年" in calendar and "月" in calendar and "四" in calendar, calendar
    assert not any(name in calendar for name in ("November", "December", "Mo", "Tu")), calendar
    colour = page.evaluate("getComputedStyle(document.querySelector('#dates')).color")
    assert colour == "rgb(223, 231, 241)", colour  # light text on the dark control, not grey on white
    page.keyboard.press("Escape")
    before = _kpis(page)
    assert int(before["registered"].replace(",", "")) > 0
    # each KPI carries its change from the previous period of the same length (环比)
    changes = [page.inner_text(f"#kpi-{k}-change") for k in ("registered", "closed_rate")]
    # ... and from the same period a year earlier (同比)
    assert changes[0].startswith("环比 ") and changes[0][3] in "▲▼→—" and " · 同比 " in changes[0]
    assert "个百分点" in changes[1] or changes[1] == "环比 — · 同比 —"

    # 积案: the side panel's table of open cases by stage ends with its total
    page.wait_for_function("document.querySelector('#backlog').innerText.includes('合计')", timeout=30_000)
    assert "跟踪督办" in page.inner_text("#backlog")

    page.get_by_label("非警务警情").check()
    page.wait_for_function(
        f"document.querySelector('#kpi-registered').innerText !== '{before['registered']}'", timeout=30_000)
    after = _kpis(page)
    assert int(after["registered"].replace(",", "")) < int(before["registered"].replace(",", ""))

    # the map redraws after the filter (a failed MapLibre update would leave the old figure up)
    assert errors == []

    # an analyst marks the first listed alert as confirmed (属实): the panel says so
    buttons = page.locator("#alerts button", has_text="属实")
    assert buttons.count() > 0, "the demo build lists alerts"
    buttons.first.click()
    page.wait_for_function("Array.from(document.querySelectorAll('#alerts .review'))"
                           ".some(e => e.innerText.includes('已核实：属实（城区综治中心）'))", timeout=30_000)

    # the emerging-hotspot layer draws classes with a legend
    page.get_by_label("新兴热点（近26周）").check()
    page.wait_for_function("document.querySelectorAll('#map .legendtext').length > 0", timeout=30_000)
    legend = page.evaluate("Array.from(document.querySelectorAll('#map .legendtext')).map(e => e.textContent)")
    assert legend and all("热点" in t or "冷点" in t for t in legend)
    # and says what the classes are not: a forecast
    page.wait_for_function("document.querySelector('#map').innerText.includes('不是对下周的预测')", timeout=30_000)

    # 积案回放: the backlog layer opens on the period's last day; ▶ plays it from the first day on
    page.get_by_label("积案回放").check()
    page.wait_for_function("document.querySelector('#map').innerText.includes('不论何时受理')", timeout=30_000)
    plot = "document.querySelector('#map .js-plotly-plot')"
    frames = page.evaluate(f"{plot}._transitionData._frames.length")
    assert frames > 1 and page.evaluate(f"{plot}.layout.sliders[0].active") == frames - 1
    page.click("#map text.updatemenu-item-text >> text=▶ 回放")
    page.wait_for_function(f"{plot}.layout.sliders[0].active < {frames - 1}", timeout=30_000)
    # ❚❚ stops it where it is (plotly's interrupted animation is not a page error)
    page.click("#map text.updatemenu-item-text >> text=❚❚")
    paused = page.evaluate(f"{plot}.layout.sliders[0].active")
    page.wait_for_timeout(2_000)  # three frames' time
    assert page.evaluate(f"{plot}.layout.sliders[0].active") == paused
    # another layer while it plays: the playback stops and its frames do not write into the new layer's hexes
    page.click("#map text.updatemenu-item-text >> text=▶ 回放")
    page.wait_for_function(f"{plot}._transitionData._frameQueue.length > 0", timeout=10_000)
    page.get_by_label("受理数").check()
    page.wait_for_function(f"!({plot}.layout.sliders || []).length", timeout=30_000)
    page.wait_for_timeout(2_000)
    hexes = f"{plot}._fullData[{plot}._fullData.length - 1]"
    assert page.evaluate(f"{hexes}.type") == "choroplethmap"
    assert page.evaluate(f"Array.from({hexes}.z).filter(v => v == null).length") == 0  # a count per drawn hex

    assert errors == []
    hosts = {urlparse(u).hostname for u in requests if u.startswith("http")}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {sorted(hosts)}"
    assert not [u for u in requests if not (u.startswith("http://127.0.0.1") or u.startswith("blob:http://127.0.0.1")
                                            or u.startswith("data:"))]
    page.close()


def test_the_weekly_brief_downloads_from_the_map_page(server, browser, tmp_path):
    """研判周报 → Word: the browser receives the .docx of the last complete week, and it opens."""
    import docx

    page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)
    _sign_in(page, server, COUNTY)
    with page.expect_download(timeout=60_000) as download:
        page.click("#brief-docx")
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    assert target.name.startswith("研判周报_") and target.suffix == ".docx"
    document = docx.Document(str(target))
    assert "社会治理研判周报" in document.paragraphs[0].text
    # the buttons say which week they give, and it is the week of the file
    said = page.inner_text(".brief")
    first, last = said.split()[1].split("–")
    month, day = (int(v) for v in first.split("/"))
    assert f"{month:02d}{day:02d}-" in target.name, (said, target.name)
    page.close()


def test_the_wall_screen_leaves_out_small_counts_fits_a_4k_screen_and_says_what_it_shows(demo_settings, browser):
    """Kiosk mode is a public screen: hexes with fewer than privacy.small_count_suppress events are not sent."""
    from dashboard.app import create_app

    app = create_app(demo_settings, kiosk=True)
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(f"http://127.0.0.1:{srv.server_port}/")
        page.wait_for_selector("#map .maplibregl-canvas", timeout=60_000)
        page.wait_for_function("document.querySelector('#map').innerText.includes('不在大屏显示')", timeout=30_000)
        z = page.evaluate("Array.from(document.querySelector('#map .js-plotly-plot')._fullData"
                          ".find(t => t.type === 'choroplethmap').z)")
        assert len(z) > 0 and min(z) >= demo_settings.small_count_suppress == 3
        assert page.locator("#brief-docx").is_hidden()
        # it says it is alive: a countdown to its next view, falling second by second
        page.wait_for_function("document.querySelector('#next-view').innerText.startsWith('下一画面')", timeout=5_000)
        first = int(page.inner_text("#next-view").split()[1])
        page.wait_for_timeout(2_200)
        assert 0 <= int(page.inner_text("#next-view").split()[1]) < first <= demo_settings.refresh_seconds
        page.close()

        # on a 4K wall screen: the county fills the map (fitted in the browser, not a fixed zoom), the map names
        # the view it shows, the type is large, and the drill-down heading of desk screens is not there
        page = browser.new_page(viewport={"width": 3840, "height": 2160})
        page.goto(f"http://127.0.0.1:{srv.server_port}/")
        page.wait_for_selector("#map .maplibregl-canvas", timeout=60_000)
        page.wait_for_function("document.querySelector('#map .js-plotly-plot')._onemapFit !== undefined",
                               timeout=30_000)
        page.wait_for_timeout(500)
        filled = page.evaluate("""(() => {
            const gd = document.querySelector('#map .js-plotly-plot'), m = gd._fullLayout.map._subplot.map;
            const b = gd.layout.meta.fit, c = m.getCanvas().getBoundingClientRect();
            const sw = m.project([b[0], b[1]]), ne = m.project([b[2], b[3]]);
            return [(ne.x - sw.x) / c.width, (sw.y - ne.y) / c.height, m.getZoom()]; })()""")
        assert max(filled[0], filled[1]) > 0.8 and min(filled[0], filled[1]) < 1.0, filled
        assert filled[2] > 11, filled  # the desk default is 10.3
        assert "受理数（" in page.inner_text("#map")
        assert page.locator("#detail-heading").is_hidden()
        size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#kpi-registered')).fontSize)")
        assert size >= 80, size
        page.close()

        # read from across the room at 1080p as at 4K, everything twice as large on the 4K screen, and nothing to
        # scroll: the side panel holds what fits, whole
        seen = {width: _wall_screen(browser, srv.server_port, width, height) for width, height in WALL_SCREENS}
        for width, s in seen.items():
            k = width / 1920
            assert s["kpi"] >= 48 * k and s["kpiLabel"] >= 18 * k and s["panel"] >= 16 * k, (width, s)
            assert s["daily"][0] >= 160 * k and s["daily"][1] >= 13 * k, (width, s)  # chart: height, type
            assert s["names"][0] >= 14 * k and s["names"][1] == s["names"][2], (width, s)  # every name placed
            assert s["note"] >= 16 * k, (width, s)
            assert s["aside"][0] <= s["aside"][1], (width, s)  # scrollHeight <= clientHeight: nothing below
            assert s["items"]["cut"] == [], (width, s)  # every item shown whole, or not at all
            assert s["items"]["alerts"] >= 2, (width, s)
            assert "所选时段" not in s["text"] and "所选" not in s["mapText"], (width, s)  # no controls here
        hd, uhd = seen[1920], seen[3840]
        assert uhd["daily"][0] >= 1.9 * hd["daily"][0] and uhd["daily"][1] >= 1.9 * hd["daily"][1], (hd, uhd)
        assert uhd["names"][0] >= 1.9 * hd["names"][0] and uhd["kpi"] >= 1.9 * hd["kpi"], (hd, uhd)
        assert uhd["items"]["alerts"] == hd["items"]["alerts"], (hd, uhd)  # the same panel, larger
    finally:
        srv.shutdown()


WALL_SCREENS = ((1920, 1080), (3840, 2160))
# what the wall screen shows at a size: computed type sizes (px), the daily chart's height and type, the map's
# area names (type size, how many, how many MapLibre placed), the side panel's scroll and client height and its
# list items (each whole inside the panel, or wrapped out of it entirely; never cut), and its visible text
WALL_SCREEN_JS = """async () => {
  const px = s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize);
  const gd = document.querySelector('#map .js-plotly-plot'), m = gd._fullLayout.map._subplot.map;
  await new Promise(r => m.loaded() ? r() : m.once('idle', r));
  const names = gd._fullData.find(t => t.type === 'scattermap');
  const symbols = m.getStyle().layers.filter(l => l.type === 'symbol').map(l => l.id);
  const placed = new Set(m.queryRenderedFeatures({layers: symbols}).map(f => f.properties.text));
  const daily = document.querySelector('#daily .js-plotly-plot')._fullLayout;
  const aside = document.querySelector('#detail'), box = aside.getBoundingClientRect();
  const items = {alerts: 0, cut: []};
  aside.querySelectorAll('li').forEach(li => {
    if (!li.offsetParent) { return; }
    const r = li.getBoundingClientRect();
    const inside = r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && r.top >= box.top - 0.5
      && r.bottom <= box.bottom + 0.5;
    if (inside) { if (li.closest('#alerts')) { items.alerts += 1; } }
    else if (r.left < box.right) { items.cut.push(li.innerText.slice(0, 20)); }  // partly in view
  });
  return {kpi: px('#kpi-registered'), kpiLabel: px('.kpi-label'), panel: px('#detail'),
          daily: [daily.height, daily.font.size], names: [names.textfont.size, names.text.length, placed.size],
          note: Math.min(...gd._fullLayout.annotations.map(a => a.font.size)),
          aside: [aside.scrollHeight, aside.clientHeight], items: items,
          text: document.querySelector('.page').innerText, mapText: document.querySelector('#map').innerText};
}"""


def _wall_screen(browser, port: int, width: int, height: int) -> dict:
    """The wall screen as a screen of ``width`` × ``height`` shows it, settled (map fitted, panel filled)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#map .maplibregl-canvas", timeout=60_000)
        page.wait_for_function("document.querySelector('#map .js-plotly-plot')._onemapFit !== undefined",
                               timeout=30_000)
        page.wait_for_selector("#backlog table", timeout=30_000)
        page.wait_for_selector("#daily .js-plotly-plot .bars", timeout=30_000)
        page.wait_for_timeout(3000)  # assets/onemap.js fits the map again as plotly settles (up to 2.5 s)
        return page.evaluate(WALL_SCREEN_JS)
    finally:
        page.close()


def test_a_town_user_signs_in_and_sees_only_the_town(server, browser, demo_settings):
    """新港街道's account: the header names the town, the KPIs count its events only, and signing out ends it."""
    from onemap import queries
    from onemap.warehouse import connect_readonly

    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(server + "login")
    page.fill("#user", TOWN.name)
    page.fill("#password", "not-the-password")
    page.click("#sign-in")
    assert "用户名或密码不正确" in page.inner_text("#login-error")
    _sign_in(page, server, TOWN)
    page.wait_for_function("document.querySelector('#kpi-registered').innerText !== '—'", timeout=30_000)
    con = connect_readonly(demo_settings.warehouse_path)
    try:
        town = queries.area_scope(con, TOWN.area)
        last = queries.date_bounds(con)[1]
        n = con.execute("SELECT count(*) FROM core.events WHERE town_code = ? AND CAST(reported_at AS DATE) "
                        "BETWEEN ? AND ?", [town.code, last - dt.timedelta(days=27), last]).fetchall()[0][0]
    finally:
        con.close()
    assert town.name in page.inner_text("header h1") and town.name in page.inner_text("#user")
    assert page.inner_text("#kpi-registered") == f"{n:,}"
    page.click("#user a:has-text('退出')")
    page.wait_for_url("**/login", timeout=30_000)
    page.goto(server)
    page.wait_for_url("**/login?next=/", timeout=30_000)
    page.close()


def test_grid_labels_keep_their_digits_and_a_hex_click_lists_its_events(server, browser):
    """A village user's map names its grids ("海景社区第3网格"): MapLibre draws every label character from the
    browser's fonts, digits included, and asks no server for glyphs (an empty glyph range once made the digits
    vanish: "海景社区第网格")."""
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    _sign_in(page, server, VILLAGE)
    labels = page.evaluate("document.querySelector('#map .js-plotly-plot').data.find(t => t.name === 'towns').text")
    assert any(any(ch.isdigit() for ch in label) for label in labels), labels
    digits = sorted({ch for label in labels for ch in label if ch.isdigit()})
    # MapLibre's glyph atlas: each digit of the labels has a drawn bitmap (an empty range leaves it null)
    page.wait_for_function(
        f"""(() => {{ const m = document.querySelector('#map .js-plotly-plot')._fullLayout.map._subplot.map;
             const entries = Object.values(m.style.glyphManager.entries);
             return {digits!r}.every(d => entries.some(e => e.glyphs[d] && e.glyphs[d].bitmap.width > 0)); }})()""",
        timeout=30_000)
    assert not [u for u in requests if "glyph" in u or ".pbf" in u]

    # the side panel opens at its top (the alerts), and stays there when nothing was clicked
    page.wait_for_timeout(1500)
    assert page.evaluate("document.querySelector('#detail').scrollTop") == 0
    # a click on a hex lists its events and brings the list into view at the foot of the side panel
    x, y = page.evaluate("""(() => {
        const gd = document.querySelector('#map .js-plotly-plot'), m = gd._fullLayout.map._subplot.map;
        const t = gd.data.find(t => t.type === 'choroplethmap');
        const ring = t.geojson.features.find(f => f.id === t.locations[0]).geometry.coordinates[0];
        const lng = ring.slice(0, -1).reduce((a, p) => a + p[0], 0) / (ring.length - 1);
        const lat = ring.slice(0, -1).reduce((a, p) => a + p[1], 0) / (ring.length - 1);
        const p = m.project([lng, lat]), r = m.getCanvas().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; })()""")
    page.mouse.click(x, y)
    page.wait_for_function("document.querySelector('#detail-body').innerText.includes('六边形（H3-')", timeout=30_000)
    assert "共 " in page.inner_text("#detail-body") and "海景社区" in page.inner_text("#detail-body .cell-name")
    # the clicked hex is outlined on the map
    page.wait_for_function("document.querySelector('#map .js-plotly-plot').data.some(t => t.name === 'selected')",
                           timeout=10_000)
    page.wait_for_function("""(() => { const h = document.querySelector('#detail-heading').getBoundingClientRect(),
        a = document.querySelector('#detail').getBoundingClientRect(); return h.top >= a.top && h.top < a.bottom; })()""",
                           timeout=10_000)
    page.close()


def test_a_county_user_drills_down_to_a_town_and_back(server, browser):
    """A town's name in the side panel's table opens the town: KPIs, map and table are the town's, the map is
    fitted to it, the address bar says so (a link to share), and the browser's back button returns."""
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    _sign_in(page, server, COUNTY)
    page.wait_for_function("document.querySelectorAll('#areas a').length > 0", timeout=30_000)
    page.wait_for_function("document.querySelector('#map .js-plotly-plot')._onemapFit !== undefined", timeout=30_000)
    county = page.inner_text("#kpi-registered")
    zoom = page.evaluate("document.querySelector('#map .js-plotly-plot')._fullLayout.map._subplot.map.getZoom()")
    link = page.locator("#areas a").first
    town = link.inner_text()
    link.click()
    page.wait_for_function(f"document.querySelector('#kpi-registered').innerText !== '{county}'", timeout=30_000)
    assert "?area=" in page.url
    page.wait_for_function("document.querySelector('#areas .breadcrumb') !== null", timeout=30_000)
    assert page.inner_text("#areas .breadcrumb b") == town
    assert page.inner_text("#areas-title").startswith("各村（社区）")
    assert page.locator("#resolution input[value='9']").is_checked()  # the town's own hex size
    page.wait_for_function(f"document.title.endsWith(' · {town}')", timeout=10_000)  # the tab names it too
    assert page.inner_text("header h1").endswith(f" · {town}")
    page.wait_for_function(f"document.querySelector('#map .js-plotly-plot')._fullLayout.map._subplot.map.getZoom()"
                           f" > {zoom} + 0.5", timeout=30_000)  # fitted to the town
    page.go_back()
    page.wait_for_function(f"document.querySelector('#kpi-registered').innerText === '{county}'", timeout=30_000)
    assert page.locator("#areas .breadcrumb").count() == 0
    page.wait_for_function("document.querySelector(\"#resolution input[value='8']\").checked", timeout=30_000)
    # another layer keeps the fitted view (each new figure carries the server's first-frame zoom)
    get_zoom = "document.querySelector('#map .js-plotly-plot')._fullLayout.map._subplot.map.getZoom()"
    page.wait_for_function(f"Math.abs({get_zoom} - {zoom}) < 0.05", timeout=10_000)  # fitted to the county again
    fitted = page.evaluate(get_zoom)
    assert abs(fitted - zoom) < 0.05, (fitted, zoom)
    page.get_by_label("超期").check()
    page.wait_for_function("document.querySelector('#map').innerText.includes('超期')", timeout=30_000)
    page.wait_for_timeout(2500)
    assert abs(page.evaluate(get_zoom) - fitted) < 0.05
    page.close()


def test_a_deployments_own_basemap_is_drawn_under_the_hexes_from_this_machine(demo_settings, browser, tmp_path):
    """With [map] basemap the browser fetches the tiles from this server only and MapLibre paints them: the
    tiles' magenta shows between the hexes (it never does on the plain background)."""
    import dataclasses
    import io

    import numpy as np
    from PIL import Image

    from dashboard.app import create_app
    from dashboard.data import DashboardData
    from onemap import queries
    from tests.geodata.tiles import make_mbtiles

    bounds = DashboardData(demo_settings).bounds(queries.COUNTY)
    tiles = make_mbtiles(tmp_path / "county.mbtiles", bounds, zooms=range(8, 13), colour=(255, 0, 255))
    app = create_app(dataclasses.replace(demo_settings, basemap=tiles, basemap_opacity=1.0))
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        tile_answers, requests = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: "/basemap/" in r.url and tile_answers.append(r.status))
        _sign_in(page, f"http://127.0.0.1:{srv.server_port}/", COUNTY)
        page.wait_for_function("document.querySelector('#kpi-registered').innerText !== '—'", timeout=30_000)
        page.wait_for_timeout(2500)
        pixels = np.asarray(Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")).astype(int)
        magenta = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] > 200)
        assert magenta.mean() > 0.05, f"tiles painted on {magenta.mean():.1%} of the map"
        assert tile_answers and 200 in tile_answers
        assert not [u for u in requests if not u.startswith(("http://127.0.0.1", "blob:http://127.0.0.1", "data:"))]
        assert "测试底图" in page.inner_text("#map")  # the tiles' attribution in the map's corner
    finally:
        srv.shutdown()


def test_a_village_cadres_laptop_gets_the_header_on_one_line(server, browser):
    """1366×768: the title, badge, brief buttons, time and account sit on one line (the village's name was broken
    inside a word, 退出 into 退 / 出), and the KPI changes fit their cards."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _sign_in(page, server, VILLAGE)
    page.wait_for_function("document.querySelector('#kpi-registered').innerText !== '—'", timeout=30_000)
    boxes = page.evaluate("""Array.from(document.querySelectorAll('.header > *'))
        .filter(e => e.offsetParent !== null && e.innerText.trim())
        .map(e => { const r = e.getBoundingClientRect(); return [e.className, r.top, r.height, r.right]; })""")
    assert boxes and max(h for _, _, h, _ in boxes) < 34, boxes  # no item on two lines
    assert max(r for _, _, _, r in boxes) <= 1366, boxes  # nothing pushed off the screen
    assert "海景社区" in page.inner_text("header h1")
    one_line = page.evaluate("""Array.from(document.querySelectorAll('.kpi-change'))
        .map(e => e.getBoundingClientRect().height < 2 * parseFloat(getComputedStyle(e).fontSize))""")
    assert all(one_line), one_line
    page.close()
