import duckdb
import pandas as pd
import pytest

from onemap.contracts import SCHEMAS, TABLES
from onemap.h3sql import h3_parent_sql
from onemap.warehouse import (
    ContractViolation,
    PublishedWarehouse,
    check_contracts,
    connect_readonly,
    write_session,
)


def _event_row(event_id="grid:1", **over):
    row = {c.name: None for c in TABLES[0].columns}
    row.update(event_id=event_id, source="grid", source_record_id=event_id.split(":")[1],
               reported_at=pd.Timestamp("2025-01-01 10:00", tz="Asia/Shanghai"), category_code="MD02",
               category_method="map", geocode_method="none", geocode_precision="none", status="登记受理",
               confidential=False, batch_id="b", source_file="f.csv", source_row=1,
               updated_at=pd.Timestamp("2025-01-02", tz="Asia/Shanghai"), content_hash="x")
    row.update(over)
    return row


def _insert(con, row):
    frame = pd.DataFrame([row])
    con.register("r", frame)
    con.execute(f"INSERT INTO core.events SELECT {', '.join(c.name for c in TABLES[0].columns)} FROM r")
    con.unregister("r")


def test_schema_has_every_layer_and_table(tmp_path):
    path = tmp_path / "w.duckdb"
    with write_session(path):
        pass
    con = connect_readonly(path)
    schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    assert set(SCHEMAS) <= schemas
    tables = {f"{s}.{t}" for s, t in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    assert {t.qualified for t in TABLES} <= tables
    cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                      "table_schema='core' AND table_name='events' ORDER BY ordinal_position").fetchall()]
    assert tuple(cols) == TABLES[0].column_names


def test_failed_session_leaves_published_file_untouched(tmp_path):
    path = tmp_path / "w.duckdb"
    with write_session(path) as con:
        _insert(con, _event_row("grid:1"))
    with pytest.raises(RuntimeError, match="boom"):
        with write_session(path) as con:
            _insert(con, _event_row("grid:2"))
            raise RuntimeError("boom")
    con = connect_readonly(path)
    assert con.execute("SELECT count(*) FROM core.events").fetchall()[0][0] == 1
    assert not list(tmp_path.glob("*.building*"))


def test_contract_violation_blocks_publish(tmp_path):
    path = tmp_path / "w.duckdb"
    with pytest.raises(ContractViolation, match="closing never precedes reporting"):
        with write_session(path) as con:
            _insert(con, _event_row("grid:1", status="已办结",
                                    closed_at=pd.Timestamp("2024-12-31", tz="Asia/Shanghai")))
    assert not path.exists()


def test_check_contracts_reports_each_failure():
    con = duckdb.connect()
    from onemap.warehouse import create_schema
    create_schema(con)
    assert check_contracts(con) == []
    _insert(con, _event_row("grid:1", status="已办结"))  # closed without closed_at
    _insert(con, _event_row("grid:2", lng=200.0, lat=10.0, h3_cell=1))
    failures = check_contracts(con)
    assert any("closing time" in f for f in failures)
    assert any("WGS84" in f for f in failures)


def test_readers_see_the_new_file_after_publish(tmp_path):
    path = tmp_path / "w.duckdb"
    with write_session(path) as con:
        _insert(con, _event_row("grid:1"))
    reader = PublishedWarehouse(path)
    assert reader.connection().execute("SELECT count(*) FROM core.events").fetchall()[0][0] == 1
    with write_session(path) as con:
        _insert(con, _event_row("grid:2"))
    assert reader.connection().execute("SELECT count(*) FROM core.events").fetchall()[0][0] == 2
    reader.close()


def test_every_cursor_the_dashboard_queries_through_keeps_the_time_zone_and_no_extension_downloads(tmp_path):
    """The dashboard's threads query through cursors of the published warehouse: each must count calendar days in
    the deployment's zone (an event at 01:00 Beijing time belongs to that day, not to the day before in UTC) and
    must not download or autoload extensions. A plain SET held for the parent connection only."""
    path = tmp_path / "w.duckdb"
    with write_session(path, "Asia/Shanghai") as con:
        _insert(con, _event_row("grid:1", reported_at=pd.Timestamp("2025-01-02 01:00", tz="Asia/Shanghai")))
    reader = PublishedWarehouse(path, "Asia/Shanghai")
    cursor = reader.connection()
    assert cursor.execute("SELECT CAST(reported_at AS DATE) FROM core.events").fetchall()[0][0] == \
        pd.Timestamp("2025-01-02").date()
    assert cursor.execute("SELECT current_setting('autoinstall_known_extensions'), "
                          "current_setting('autoload_known_extensions')").fetchall()[0] == (False, False)
    reader.close()


def test_h3_parent_sql_matches_h3():
    import h3
    from hypothesis import given, settings
    from hypothesis import strategies as st

    con = duckdb.connect()

    @settings(max_examples=60, deadline=None)
    @given(st.floats(18, 50), st.floats(75, 130), st.integers(0, 9))
    def check(lat, lng, res):
        cell = h3.latlng_to_cell(lat, lng, 10)
        got = con.execute(f"SELECT {h3_parent_sql('$c::UBIGINT', res)}", {"c": h3.str_to_int(cell)}).fetchall()[0][0]
        assert got == h3.str_to_int(h3.cell_to_parent(cell, res))

    check()
