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
    def load(cls, directory: Path = MAPPING_DIR, deployment: Path | None = None) -> CategoryMap:
        """The shipped table, and ``deployment``'s rows if that file exists (a deployment's own source systems,
        e.g. its 12345 hotline's 诉求类型, or its own reading of a shipped code, which then replaces the shipped
        row): ``<home>/mappings/categories.csv``, same columns, ``flags`` and ``version`` optional."""
        files = sorted(directory.glob("categories_v*.csv"), key=lambda p: int(p.stem.split("_v")[-1]))
        if not files:
            raise FileNotFoundError(f"no categories_v*.csv mapping table in {directory}")
        table = _read_table(files[-1])
        if deployment is not None and Path(deployment).is_file():
            own = _read_table(Path(deployment))
            key = ["source_system", "source_code"]
            table = pd.concat([table.merge(own[key], on=key, how="left", indicator=True)
                               .query("_merge == 'left_only'").drop(columns="_merge"), own], ignore_index=True)
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


def _read_table(path: Path) -> pd.DataFrame:
    """A mapping table, checked: its columns, no code mapped twice, every category a product category (the file,
    row and code named)."""
    from onemap.categories import FLAGS, is_valid_code

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: not a UTF-8 CSV mapping table: {exc}") from None
    missing = [c for c in ("source_system", "source_code", "category_code") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: the mapping table lacks column(s) {', '.join(missing)} (its columns: "
                         "source_system, source_code, source_name, category_code, flags, version)")
    table = table.reindex(columns=["source_system", "source_code", "source_name", "category_code", "flags",
                                   "version"], fill_value="")
    for c in ("source_system", "source_code", "category_code"):
        table[c] = table[c].str.strip()
    table["category_code"] = table["category_code"].str.upper()  # md15 is MD15 (the KPIs and the brief read MD15)
    # codes match whatever their case (CategoryMap.map): A01 and a01 are one code, mapped once or alike
    keyed = table.assign(key=table["source_code"].str.lower())
    exact = table.duplicated(["source_system", "source_code"], keep=False)
    unlike = keyed.groupby(["source_system", "key"])[["category_code", "flags"]].transform("nunique").max(axis=1) > 1
    dup = exact | unlike
    if dup.any():
        rows = [f"row {i + 2} ({table['source_code'].iat[i]!r})" for i in dup.to_numpy().nonzero()[0][:10]]
        raise ValueError(f"{path}: codes mapped twice (whatever their case): {', '.join(rows)}")
    known = {f.key: f.key for f in FLAGS} | {f.name_zh: f.key for f in FLAGS}
    flags = []
    for i, text in enumerate(table["flags"].fillna("")):
        parts = [f.strip() for f in str(text).split("|") if f.strip()]
        wrong = [f for f in parts if f not in known]
        if wrong:  # a flag no one reads: a 家暴 case would be listed to viewers as if it were not sensitive
            raise ValueError(f"{path}, row {i + 2}: flag(s) {wrong} are not product flags (one of "
                             f"{', '.join(f'{f.key} / {f.name_zh}' for f in FLAGS)}; several joined by |)")
        flags.append("|".join(known[f] for f in parts))
    table["flags"] = flags
    bad = ~table["category_code"].map(is_valid_code)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}, row {i + 2}: category_code {table['category_code'].iat[i]!r} (for "
                         f"{table['source_code'].iat[i]!r}) is not a product category (MD01–MD99, CG/ZA/AQ/HJ/SY/MS/"
                         "ZH/QT and their sub-codes; onemap/categories.py)")
    return table
