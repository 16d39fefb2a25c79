"""Repeat places (一地多报) as of a moment, from the warehouse: which events are read, the places found among
them (:func:`models.repeat_places.repeat_places`), and where each place is — the area codes most of its events
carry and the road most of them name. One definition for the build (``scores.repeat_places``, as of the data)
and for a weekly brief (as of the end of its week, so that a past week reads the same whenever it is made).

A place is named by its village and road, never by a house number: the brief and the panel are read by people
who should not learn which household calls the police."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from models.repeat_places import repeat_places

REPEAT_MIN_COUNT = 3
REPEAT_RADIUS_M = 50.0
REPEAT_DEFAULT_WINDOW = 28  # days, when the Knox calibration finds no near-repeat window
LOOKBACK_DAYS = 90  # events read: the calibration's sample and the longest window

# an address's road: the name before the house number, after the town / village part
_ADMIN_PREFIX = re.compile(r"^.*(?:社区|村|居委会|街道|镇|乡)")
_ROAD = re.compile(r"([\u4e00-\u9fff]{1,10}?(?:大道|大街|路|街|巷|弄|胡同))")


def recent_events(con, as_of: pd.Timestamp) -> pd.DataFrame:
    """The located, non-confidential events of the ``LOOKBACK_DAYS`` up to ``as_of``, with their area codes and
    redacted address; one matter once: of a grid report and a police incident linked as the same matter
    (pipelines.load.link_matters) both here, only one is kept, or every linked matter would count twice towards a
    repeat place and make a near-repeat pattern of its own in the Knox test (40 m and hours apart, by design)."""
    events = con.execute(
        "SELECT event_id, lng, lat, reported_at AS occurred_at, category_code, town_code, village_code, grid_code, "
        "address_redacted, linked_event_id FROM core.events WHERE lng IS NOT NULL "
        "AND reported_at > $as_of - INTERVAL 90 DAY AND reported_at <= $as_of AND NOT confidential",
        {"as_of": pd.Timestamp(as_of)}).df()
    twin = events["linked_event_id"]
    second = twin.notna() & twin.isin(events["event_id"]) & (twin < events["event_id"])  # the pair's other is kept
    return events[~second].drop(columns="linked_event_id").reset_index(drop=True)


def road_of(address: str | None) -> str | None:
    """'红草镇白口村香洲路19号' -> '香洲路'; None when no road is named."""
    if not isinstance(address, str) or not address:
        return None
    found = _ROAD.search(_ADMIN_PREFIX.sub("", address))
    return found.group(1) if found else None


def places_as_of(con, as_of: pd.Timestamp, window_days: float, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """The repeat places in the ``window_days`` ending at ``as_of`` (``events``: :func:`recent_events`, read if
    not given), most incidents first, each with ``town_code``, ``village_code``, ``grid_code`` (the codes most of
    its events carry) and ``road`` (the road most of its events' addresses name, or None)."""
    events = recent_events(con, as_of) if events is None else events
    places = repeat_places(events, min_count=REPEAT_MIN_COUNT, window_days=window_days, radius_m=REPEAT_RADIUS_M,
                           as_of=as_of, address_col=None)
    return _with_location(places, events)


def _with_location(places: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    places = places.copy()
    columns = ("town_code", "village_code", "grid_code", "road")
    if places.empty:
        return places.assign(**{c: pd.Series(dtype=object) for c in columns})
    members = places[["place_id", "event_ids"]].explode("event_ids").rename(columns={"event_ids": "event_id"})
    members = members.merge(events[["event_id", "town_code", "village_code", "grid_code", "address_redacted"]],
                            on="event_id", how="left")
    members["road"] = members["address_redacted"].map(road_of)
    for column in columns:
        top = (members.dropna(subset=[column]).groupby(["place_id", column]).size().rename("n").reset_index()
               .sort_values(["place_id", "n", column], ascending=[True, False, True])
               .drop_duplicates("place_id").set_index("place_id")[column])
        places[column] = places["place_id"].map(top).astype(object)
        places[column] = places[column].where(places[column].notna(), None)
    return places


def place_label(names: dict[str, str], town: str | None, village: str | None, road: str | None) -> str | None:
    """'红草镇沙山村（香洲路）': the place as a reader finds it; None when neither area is known."""
    area = (names.get(town, "") if town else "") + (names.get(village, "") if village else "")
    if not area:
        return road
    return f"{area}（{road}）" if road else area


def label_places(places: pd.DataFrame, names: dict[str, str]) -> np.ndarray:
    """:func:`place_label` of each place, told apart where two would read the same: '海景社区（人民路，第3网格）',
    and failing that numbered ('…（人民路）之二'), so that a list for follow-up visits never holds two
    identical lines for two places."""
    labels = [place_label(names, t, v, r) for t, v, r in
              zip(places["town_code"], places["village_code"], places["road"], strict=True)]
    same = Counter(labels)
    grids = places["grid_code"] if "grid_code" in places else [None] * len(labels)
    for i, (label, grid, village) in enumerate(zip(labels, grids, places["village_code"], strict=True)):
        if label is None or same[label] < 2 or not isinstance(grid, str) or grid not in names:
            continue
        short = names[grid].removeprefix(names.get(village, "") if isinstance(village, str) else "") or names[grid]
        labels[i] = f"{label[:-1]}，{short}）" if label.endswith("）") else f"{label}（{short}）"
    seen: Counter = Counter()
    for i, label in enumerate(labels):
        seen[label] += 1
        if label is not None and seen[label] > 1:
            labels[i] = f"{label}之{NUMERALS[min(seen[label], len(NUMERALS)) - 1]}"
    return np.array(labels, dtype=object)


NUMERALS = "一二三四五六七八九十"


def calibrated_window(con) -> float:
    """The window the last build used (its Knox calibration), or the default when nothing was built."""
    row = con.execute("SELECT json_extract_string(params, '$.window_days') FROM meta.model_runs "
                      "WHERE model = 'repeat_places' ORDER BY ran_at DESC LIMIT 1").fetchall()
    return float(row[0][0]) if row and row[0][0] is not None else float(REPEAT_DEFAULT_WINDOW)


def places_in_scope(places: pd.DataFrame, level: str | None, code: str | None) -> pd.DataFrame:
    """The places of a town or village (by the codes their events carry); every place for the county."""
    if level in ("town", "village") and code:
        places = places[places[f"{level}_code"] == code]
    return places.reset_index(drop=True)
