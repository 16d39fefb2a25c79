"""Column helpers of staging: each fast path equals the plain Python/pandas definition."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.columns import hex64, lookup, strptime_common, take_text


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=50))
def test_hex64_is_zero_padded_lower_hex(values):
    got = hex64(np.array(values, dtype=np.uint64)).tolist()
    assert got == [f"{v:016x}" for v in values]


@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "B", " c", "", "d"])), max_size=40))
def test_lookup_equals_a_dict_lookup_per_row(values):
    mapping = {"a": 1, "B": 2, "": 3}
    got = lookup(pd.Series(values, dtype=object), mapping, default="?")
    assert got.tolist() == [mapping.get(v, "?") if v is not None else "?" for v in values]
    calls = []
    lookup(pd.Series(values, dtype=object), lambda v: calls.append(v))
    assert len(calls) == len(set(values) - {None}) + 1  # once per distinct value, plus once for "missing"


@given(st.data())
def test_take_text_equals_picking_per_row(data):
    values = data.draw(st.lists(st.text(max_size=4), min_size=1, max_size=5))
    n = data.draw(st.integers(0, 30))
    index = np.array(data.draw(st.lists(st.integers(-1, len(values) - 1), min_size=n, max_size=n)), dtype=np.int64)
    rest = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n))) if n else [], dtype=np.int64)
    rest_values = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=len(rest), max_size=len(rest)))
    expected = [values[i] if i >= 0 else None for i in index]
    for r, v in zip(rest, rest_values, strict=True):
        expected[r] = v
    got = take_text(values, index, rest, rest_values)
    assert got.dtype == pd.StringDtype("pyarrow")
    assert [None if pd.isna(v) else v for v in got] == expected


def _strict(text: str | None):
    """pandas' reading with the explicit format (the parser this fast path replaced)."""
    if text is None:
        return pd.NaT
    return pd.to_datetime(pd.Series([text.strip()]), format="%Y-%m-%d %H:%M:%S", errors="coerce")[0]


@settings(max_examples=200)
@given(st.lists(st.one_of(
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),
    st.tuples(st.integers(1990, 2030), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
              st.integers(0, 61), st.integers(0, 61)).map(lambda p: "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*p)),
    st.sampled_from(["", " ", "2024-11-16 7:2:5", "2024-11-16T07:22:55", "2024-11-16 07:22:55.5", "x", None]),
), max_size=30))
def test_strptime_common_never_accepts_what_strict_strptime_refuses(texts):
    """Where the fast parser gives a time it is pandas' reading with the explicit format (never a rolled-over
    impossible date); what it leaves NaT goes on to the slower parsers."""
    got = strptime_common(pd.Series(texts, dtype=object))
    for text, value in zip(texts, got, strict=True):
        if not pd.isna(value):
            assert pd.Timestamp(value) == _strict(text), text
        elif text is not None and len(text) == 19 and not pd.isna(_strict(text)):
            raise AssertionError(f"a plain zero-padded time was not parsed: {text!r}")


def test_strptime_common_refuses_an_impossible_date_arrow_would_roll_over():
    got = strptime_common(pd.Series(["2024-02-30 00:00:00", "2023-02-29 12:00:00", "2024-02-29 12:00:00"]))
    assert pd.isna(got[0]) and pd.isna(got[1])
    assert pd.Timestamp(got[2]) == pd.Timestamp("2024-02-29 12:00:00")


def test_strptime_common_reads_sliced_and_chunked_arrow_columns():
    import pyarrow as pa

    texts = ["2024-11-16 07:22:55", None, "2024-11-16 7:22:55", "2025-01-02 03:04:05"] * 3
    chunked = pa.chunked_array([pa.array(texts[:5], pa.large_string()), pa.array(texts[5:], pa.large_string())])
    column = pd.Series(pd.StringDtype("pyarrow").__from_arrow__(chunked))
    expected = [_strict(t) if t is not None and len(t) == 19 else pd.NaT for t in texts]
    for part in (column, column.iloc[3:10], column.iloc[5:]):
        got = [pd.Timestamp(v) if not pd.isna(v) else pd.NaT for v in strptime_common(part)]
        want = expected[part.index[0]:part.index[-1] + 1]
        assert [str(v) for v in got] == [str(v) for v in want]
