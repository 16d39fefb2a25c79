"""Read the published warehouse of a test deployment: one read-only connection per query."""
from __future__ import annotations

import pandas as pd

from onemap.warehouse import connect_readonly


def query_rows(settings, sql: str) -> list[tuple]:
    return _run(settings, sql, lambda result: result.fetchall())


def query_frame(settings, sql: str) -> pd.DataFrame:
    return _run(settings, sql, lambda result: result.df())


def _run(settings, sql: str, fetch):
    con = connect_readonly(settings.warehouse_path)
    try:
        return fetch(con.execute(sql))
    finally:
        con.close()
