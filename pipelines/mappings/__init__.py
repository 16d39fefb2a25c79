"""Versioned mapping tables from source category codes to the product categories (onemap.categories).

``categories_v<N>.csv`` holds (source_system, source_code, source_name, category_code, flags, version);
the highest version present is used. Codes missing from the table are reported (quarantined with
reason ``unknown_category``), never silently dropped or guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.columns import lookup

MAPPING_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CategoryMap:
    table: pd.DataFrame
    version: int

    @classmethod
    def load(cls, directory: Path = MAPPING_DIR) -> CategoryMap:
        files = sorted(directory.glob("categories_v*.csv"), key=lambda p: int(p.stem.split("_v")[-1]))
        if not files:
            raise FileNotFoundError(f"no categories_v*.csv mapping table in {directory}")
        table = pd.read_csv(files[-1], dtype=str, keep_default_na=False)
        dup = table.duplicated(["source_system", "source_code"], keep=False)
        if dup.any():
            raise ValueError(f"{files[-1]}: codes mapped twice: {table.loc[dup, 'source_code'].tolist()}")
        return cls(table, int(files[-1].stem.split("_v")[-1]))

    def systems(self) -> list[str]:
        return sorted(self.table["source_system"].unique())

    def map(self, system: str, codes: pd.Series) -> pd.DataFrame:
        """category_code (None when unmapped) and flags (list or None) for each raw code."""
        sub = self.table[self.table["source_system"] == system]
        # codes match whatever their case and surrounding spaces (' a01 ' is A01; a hand-typed export has both)
        source = sub["source_code"].astype(str).str.strip().str.lower()
        code_of = dict(zip(source, sub["category_code"], strict=True))
        flags_of = {c: [f for f in fl.split("|") if f] or None for c, fl in zip(source, sub["flags"], strict=True)}
        keys = codes.astype(pd.StringDtype("pyarrow")).str.strip().str.lower().fillna("")  # Arrow: 9x casefold
        return pd.DataFrame({"category_code": lookup(keys, code_of), "flags": lookup(keys, flags_of)},
                            index=codes.index)
