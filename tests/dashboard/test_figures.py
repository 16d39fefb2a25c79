"""Figure builders' own rules (dashboard.figures), without a server."""
from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from dashboard.figures import _capped_ticks, hex_map


@given(top=st.floats(0.5, 1e6), over=st.floats(0.01, 1e6))
def test_a_capped_colour_scale_says_its_top_is_that_many_or_more(top, over):
    ticks = _capped_ticks(top, top + over)
    values, text = ticks["tickvals"], ticks["ticktext"]
    assert values[-1] == top and text[-1] == f"≥{top:,.0f}" and values[0] == 0
    assert all(a < b for a, b in zip(values, values[1:], strict=False))  # increasing, none past the top
    assert 1 <= len(values) <= 8 and not any(t.startswith("≥") for t in text[:-1])


def test_the_map_marks_the_top_of_its_scale_only_when_a_hex_goes_past_it():
    counts = pd.DataFrame({"cell": ["8841111287fffff", "8841111593fffff", "884111023dfffff"], "n": [1, 2, 240]})
    bar = hex_map(counts, {}, pd.DataFrame({"lng": [], "lat": [], "name": []}), {"lon": 115.4, "lat": 22.8},
                  zmax=100).data[-1].colorbar
    assert bar.ticktext[-1] == "≥100"
    even = hex_map(counts.assign(n=[1, 2, 3]), {}, pd.DataFrame({"lng": [], "lat": [], "name": []}),
                   {"lon": 115.4, "lat": 22.8}, zmax=3).data[-1].colorbar
    assert even.ticktext is None  # plotly's own ticks: nothing is past the top


def test_playback_draws_its_map_below_the_slider_and_its_total_clear_of_the_corner_note():
    """积案回放: the slider and its dates sat over the top of a tall town, and each day's total was written over the
    end of the corner note; the map's domain now ends below the slider and the total sits above its right end."""
    import h3

    from dashboard.figures import PLAYBACK_MAP_TOP, backlog_map

    cells = [h3.latlng_to_cell(22.78 + i * 0.01, 115.37, 8) for i in range(3)]
    steps = pd.to_datetime(["2026-11-02", "2026-11-03"]).tz_localize("Asia/Shanghai")
    frame = pd.DataFrame({"as_of": [s for s in steps for _ in cells], "cell": cells * 2, "n": [1, 2, 3, 2, 3, 4]})
    fig = backlog_map(frame, {}, pd.DataFrame({"name": [], "lng": [], "lat": []}), {"lon": 115.37, "lat": 22.79},
                      note="积案：各日日终仍未办结的案件")
    assert list(fig.layout.map.domain.y) == [0, PLAYBACK_MAP_TOP] and PLAYBACK_MAP_TOP < fig.layout.sliders[0].y
    total = next(a for a in fig.layout.annotations if "日终积案" in a.text)
    corner = next(a for a in fig.layout.annotations if a.text.startswith("积案："))
    assert "11-02 日终积案 9 件" in total.text  # 00:00 on 11-03 ends 11-02
    assert total.y == 1 and total.yanchor == "top" and corner.y < 0.1
    assert all("日终积案" in f.layout.annotations[-1].text for f in fig.frames)
