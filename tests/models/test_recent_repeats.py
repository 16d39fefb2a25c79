"""Repeat places as of a moment (models.recent_repeats): the build's table and a past week's brief apply one
definition; a place is named by village and road, never by a house number."""
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.recent_repeats import (
    calibrated_window,
    label_places,
    place_label,
    places_as_of,
    places_in_scope,
    road_of,
)
from onemap import queries


@pytest.mark.parametrize(("address", "road"), [
    ("红草镇白口村香洲路19号", "香洲路"),
    ("凤山街道文化社区新城中路88号", "新城中路"),
    ("东洲街道东角村海滨大道99号", "海滨大道"),
    ("新港街道人民社区通港路274号3栋502", "通港路"),
    ("新港街道人民社区", None),
    ("", None),
    (None, None),
])
def test_the_road_is_the_name_before_the_house_number(address, road):
    assert road_of(address) == road


@given(st.text(alphabet="镇村社区街道路街巷大道号栋香洲新城海滨0123456789 ", max_size=40))
def test_a_road_never_carries_a_number_and_comes_from_the_address(address):
    road = road_of(address)
    assert road is None or (road in address and not any(ch.isdigit() for ch in road))


def test_a_place_is_named_by_its_village_and_road():
    names = {"441502100": "红草镇", "441502100207": "沙山村"}
    assert place_label(names, "441502100", "441502100207", "香洲路") == "红草镇沙山村（香洲路）"
    assert place_label(names, "441502100", None, None) == "红草镇"
    assert place_label(names, None, None, "香洲路") == "香洲路"
    assert place_label(names, None, None, None) is None


def _events(as_of: pd.Timestamp) -> pd.DataFrame:
    """Two places 2 km apart: one in 沙山村 with incidents 20, 15 and 12 days before ``as_of`` (one of them
    placed by its event in the next village), one in 东湾村 with incidents 5, 3 and 1 day before; and a lone
    incident elsewhere."""
    rows = [(20, 115.3616, 22.8561, "T1", "V1", "红草镇沙山村香洲路19号"),
            (15, 115.36165, 22.85612, "T1", "V1", "红草镇沙山村香洲路21号"),
            (12, 115.36162, 22.85608, "T1", "V2", "红草镇白口村海滨大道3号"),
            (5, 115.3800, 22.8561, "T2", "V3", "田墘街道东湾村通港路2号"),
            (3, 115.38004, 22.85613, "T2", "V3", None),
            (1, 115.37998, 22.85607, "T2", "V3", "田墘街道东湾村通港路8号"),
            (2, 115.4200, 22.9000, "T2", "V3", "田墘街道东湾村通港路9号")]
    return pd.DataFrame({
        "event_id": [f"e{i}" for i in range(len(rows))], "lng": [r[1] for r in rows], "lat": [r[2] for r in rows],
        "occurred_at": [as_of - pd.Timedelta(days=r[0]) for r in rows], "category_code": "neighbour",
        "town_code": [r[3] for r in rows], "village_code": [r[4] for r in rows],
        "grid_code": [r[4] + "01" for r in rows], "address_redacted": [r[5] for r in rows]})


AS_OF = pd.Timestamp("2026-11-29 23:59:59", tz="Asia/Shanghai")


def test_each_place_carries_the_codes_and_road_most_of_its_events_name():
    places = places_as_of(None, AS_OF, 28, _events(AS_OF)).set_index("town_code")
    assert len(places) == 2 and places["n_events"].tolist() == [3, 3]
    assert places.loc["T1", "village_code"] == "V1" and places.loc["T1", "road"] == "香洲路"
    assert places.loc["T2", "village_code"] == "V3" and places.loc["T2", "road"] == "通港路"
    names = {"T1": "红草镇", "V1": "沙山村", "T2": "田墘街道", "V3": "东湾村"}
    assert sorted(label_places(places.reset_index(), names)) == ["田墘街道东湾村（通港路）", "红草镇沙山村（香洲路）"]


def test_a_past_weeks_places_hold_only_incidents_up_to_its_end():
    events = _events(AS_OF)
    week_end = AS_OF - pd.Timedelta(days=10)
    then = places_as_of(None, week_end, 28, events)
    assert then["town_code"].tolist() == ["T1"] and (then["last_at"] <= week_end).all()
    assert len(places_as_of(None, AS_OF, 28, events)) == 2
    assert places_as_of(None, AS_OF, 14, events)["town_code"].tolist() == ["T2"]  # the window counts back from as_of


def test_a_towns_places_are_those_its_events_place_in_it():
    places = places_as_of(None, AS_OF, 28, _events(AS_OF))
    assert places_in_scope(places, "town", "T2")["village_code"].tolist() == ["V3"]
    assert places_in_scope(places, "village", "V1")["town_code"].tolist() == ["T1"]
    assert len(places_in_scope(places, None, None)) == 2


def test_the_builds_table_is_the_definition_applied_at_the_build(con):
    as_of = queries.reference_time(con)
    places = places_as_of(con, as_of, calibrated_window(con))
    stored = con.execute("SELECT n_events, place FROM scores.repeat_places ORDER BY n_events DESC, place_id").df()
    assert len(places) == len(stored)  # the small test demo may have none
    assert sorted(places["n_events"], reverse=True) == stored["n_events"].tolist()
    assert sorted(label_places(places, queries.area_names(con)), key=str) == sorted(stored["place"], key=str)


def test_two_places_that_would_read_the_same_are_told_apart():
    """Two repeat places on one road of one village are named by their grids, and two in one grid by number:
    a follow-up list never holds two identical lines for two places."""
    names = {"441502001": "新港街道", "441502001001": "海景社区", "441502001001001": "海景社区第1网格",
             "441502001001002": "海景社区第2网格"}
    places = pd.DataFrame({"town_code": ["441502001"] * 4, "village_code": ["441502001001"] * 4,
                           "grid_code": ["441502001001001", "441502001001002", "441502001001002", None],
                           "road": ["人民路", "人民路", "人民路", "东涌路"]})
    assert list(label_places(places, names)) == [
        "新港街道海景社区（人民路，第1网格）", "新港街道海景社区（人民路，第2网格）",
        "新港街道海景社区（人民路，第2网格）之二", "新港街道海景社区（东涌路）"]


def test_a_matter_reported_by_both_sources_counts_once_towards_repeat_places(con):
    """A grid report and a police incident linked as one matter are 40 m and hours apart by design: both kept, each
    linked matter would count twice at a place and make a near-repeat of its own in the Knox test."""
    from models.recent_repeats import recent_events

    as_of = queries.reference_time(con)
    events = recent_events(con, as_of)
    every = con.execute("SELECT event_id, linked_event_id FROM core.events WHERE lng IS NOT NULL AND NOT confidential "
                        "AND reported_at > $a - INTERVAL 90 DAY AND reported_at <= $a", {"a": as_of}).df()
    pairs = every[every["linked_event_id"].isin(every["event_id"])]
    assert len(pairs) >= 20  # the demo links grid and police reports of the same matters
    kept = set(events["event_id"])
    assert not any(a in kept and b in kept for a, b in zip(pairs["event_id"], pairs["linked_event_id"], strict=True))
    assert all(a in kept or b in kept for a, b in zip(pairs["event_id"], pairs["linked_event_id"], strict=True))
    assert len(events) == len(every) - len(pairs) // 2
