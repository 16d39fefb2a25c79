"""Column-mapping profiles (TOML), one per source system: which header means which canonical field."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
SOURCES = ("grid", "police", "hotline")
DEFAULT_PROFILE = {"grid": "demo_grid", "police": "demo_police"}


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    category_system: str
    crs: str
    crs_column: str
    timezone: str
    sheet: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    party_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    def resolve_headers(self, headers: list[str]) -> dict[str, str]:
        """Map canonical field -> the header present in this file (first alias that matches)."""
        norm = {h.strip().lstrip("\ufeff").lower(): h for h in headers}
        found = {}
        for canonical, aliases in self.columns.items():
            for alias in aliases:
                if alias.lower() in norm:
                    found[canonical] = norm[alias.lower()]
                    break
        return found


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"no profile {name_or_path!r}; shipped profiles: {', '.join(available_profiles())}")
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    try:
        p = raw["profile"]
        columns = {k: tuple([v] if isinstance(v, str) else v) for k, v in raw["columns"].items()}
        profile = Profile(
            name=p["name"], source=p["source"], category_system=p["category_system"], crs=p.get("crs", "wgs84"),
            crs_column=p.get("crs_column", ""), timezone=p.get("timezone", "Asia/Shanghai"), sheet=p.get("sheet", ""),
            columns=columns, required=tuple(raw.get("required", {}).get("fields", ["source_record_id", "reported_at"])),
            party_columns=tuple(raw.get("party", {}).get("columns", [])),
            drop_columns=tuple(raw.get("drop", {}).get("columns", [])), path=path,
        )
    except KeyError as exc:
        raise ProfileError(f"{path}: missing key {exc.args[0]!r}") from exc
    if profile.source not in SOURCES:
        raise ProfileError(f"{path}: source {profile.source!r} is not one of {SOURCES}")
    return profile
