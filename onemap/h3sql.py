"""H3 arithmetic in DuckDB SQL on UBIGINT cells, with no extension (extensions cannot be installed offline)."""
from __future__ import annotations


def h3_parent_sql(cell_expr: str, resolution: int) -> str:
    """SQL for the H3 parent of a UBIGINT cell, by bit arithmetic.

    The resolution sits in bits 52-55; each finer digit is 3 bits and is set to 7 (unused) in a parent.
    ``cell_expr`` must be a column name or expression from code, never user input.
    """
    r = int(resolution)
    if not 0 <= r <= 15:
        raise ValueError(f"H3 resolution {resolution} is not in 0..15")
    fill = (1 << (3 * (15 - r))) - 1
    return f"(({cell_expr} & ~(15::UBIGINT << 52)) | ({r}::UBIGINT << 52) | {fill}::UBIGINT)"
