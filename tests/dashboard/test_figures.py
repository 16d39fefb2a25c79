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
