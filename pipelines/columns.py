"""Fast column helpers for staging: look-ups through the distinct values, hex digests, text times.

An export column of a million rows holds a few dozen distinct statuses, CRS names or category codes, so
every per-value operation (a dict look-up, ``str.lower``) runs once per distinct value and the result is
spread back by position, instead of once per row.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def lookup(values: pd.Series, mapping: Mapping | Callable, default=None) -> np.ndarray:
    """``mapping[v]`` (or ``mapping(v)``) for each value, ``default`` where it is missing or not a key.

    Returns an object array aligned with ``values``; the mapping is consulted once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    get = mapping if callable(mapping) else (lambda v: mapping.get(v, default))
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [get(v) for v in uniques]
    mapped[-1] = get(None) if callable(mapping) else default  # code -1: a missing value
    return mapped[codes]


def hex64(digest: np.ndarray) -> pd.Series:
    """Unsigned 64-bit integers as 16-digit lower-case hex text (Arrow-backed), like ``f"{d:016x}"``."""
    raw = _HEX[np.ascontiguousarray(digest, dtype=">u8").view(np.uint8).reshape(-1, 8)].view("S16").ravel()
    text = pa.array(raw, type=pa.binary()).cast(pa.string())
    return pd.Series(pd.StringDtype("pyarrow").__from_arrow__(text))


def strptime_common(text: pd.Series) -> np.ndarray:
    """datetime64[ns] of each text in the zero-padded form ``YYYY-MM-DD HH:MM:SS`` (Arrow's parser,
    several times faster than pandas'); NaT for anything else, left to the slower, stricter parsers.

    Arrow rolls an impossible date over (2024-02-30 → 2024-03-01) where Python's strptime refuses it, so a
    parse counts only when its date is the text's."""
    trimmed = pc.utf8_trim_whitespace(text.astype(pd.StringDtype("pyarrow")).array.__arrow_array__())
    parsed = pc.strptime(trimmed, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    date_text = pc.cast(pc.cast(parsed, pa.date32()), pa.string())  # ISO, no strftime (slow in Arrow)
    exact = pc.and_(pc.equal(pc.utf8_length(trimmed), 19),
                    pc.equal(pc.utf8_slice_codeunits(trimmed, 0, 10), date_text))
    parsed = pc.if_else(pc.fill_null(exact, False), parsed, pa.scalar(None, parsed.type))
    return parsed.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
