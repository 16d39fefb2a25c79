"""Settings: config/base.toml, then a local TOML file, then ONEMAP_* environment variables.

Loaded once into a frozen object (``get_settings()``); ``--home`` on the command line sets ONEMAP_HOME
before the first call. Environment variables use ``ONEMAP_<SECTION>__<KEY>`` (double underscore), and
values are parsed as TOML literals where possible (``ONEMAP_GEO__H3_DEFAULT=9``, ``...=[7,8]``).
"""
from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "base.toml"
LOCAL_CONFIG_NAME = "onemap.local.toml"


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the key and where it came from."""


@dataclass(frozen=True)
class Settings:
    home: Path
    county_code: str
    county_name: str
    areas_dir: Path | None
    crs: str
    h3_resolutions: tuple[int, ...]
    h3_finest: int
    h3_default: int
    timezone: str
    demo_seed: int
    demo_events: int
    demo_years: int
    demo_end_date: str
    host: str
    port: int
    refresh_seconds: int
    hmac_key_env: str
    small_count_suppress: int
    hotspot_time_step: int = 0
    users_file: Path | None = None
    secure_cookies: bool = False
    trusted_proxy: str = ""
    basemap: Path | None = None      # [map] basemap: an MBTiles file or a folder of {z}/{x}/{y} raster tiles
    basemap_crs: str = "wgs84"
    basemap_attribution: str = ""
    basemap_opacity: float = 0.6
    undo_keep: int = 3               # [ingest] undo_keep: loads `onemap undo` can take back (0 = none kept)

    @property
    def users_path(self) -> Path:
        """The accounts file (``[access] users_file``, default <home>/secrets/users.toml): outside the repo."""
        return self.users_file or self.home / "secrets" / "users.toml"

    @property
    def reviews_path(self) -> Path:
        """Analysts' verdicts on alerts (onemap.reviews): beside the warehouse, which each build replaces."""
        return self.home / "reviews" / "alert_reviews.jsonl"

    def secrets_dir(self) -> Path:
        """<home>/secrets, made owner-only (the session key, the demo's pseudonym key, the default users file)."""
        folder = self.home / "secrets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)  # one made by an earlier version was readable by all
        return folder

    @property
    def session_key_file(self) -> Path:
        """The key that signs the dashboard's sign-in cookies, generated on first use."""
        return self.home / "secrets" / "session.key"

    @property
    def category_mapping_path(self) -> Path:
        """The deployment's own category mapping rows (pipelines.mappings.CategoryMap.load), beside its data."""
        return self.home / "mappings" / "categories.csv"

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse" / "onemap.duckdb"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def hmac_key_file(self) -> Path:
        """Where `onemap demo` keeps a generated key when the environment gives none (outside the repo)."""
        return self.home / "secrets" / "hmac.key"

    def hmac_key(self) -> bytes:
        """The keyed-pseudonym secret: the environment variable, else the deployment's key file.

        Never stored in the repository; a missing key is an error, not a default.
        """
        value = os.environ.get(self.hmac_key_env, "")
        if not value and self.hmac_key_file.is_file():
            value = self.hmac_key_file.read_text(encoding="utf-8").strip()
        if not value:
            raise SettingsError(
                f"environment variable {self.hmac_key_env} is not set: party identifiers are stored only as "
                "keyed HMAC pseudonyms and the key must come from the deployment (e.g. export "
                f"{self.hmac_key_env}=$(openssl rand -hex 32))"
            )
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value.encode("utf-8")


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_overrides(environ: dict[str, str]) -> dict:
    out: dict[str, dict] = {}
    for name, value in environ.items():
        if not name.startswith("ONEMAP_") or "__" not in name:
            continue
        section, _, key = name[len("ONEMAP_"):].lower().partition("__")
        out.setdefault(section, {})[key] = _parse_env_value(value)
    if environ.get("ONEMAP_HOME"):
        out.setdefault("paths", {})["home"] = environ["ONEMAP_HOME"]
    return out


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from exc


def _whole(value: Any, key: str) -> int:
    """A whole number (1.5 read as 1 would keep fewer undo points than asked for)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().lstrip("-").isdigit():
        raise SettingsError(f"{key}={value!r} must be a whole number")
    return int(value)


def load_settings(environ: dict[str, str] | None = None, local_file: Path | None = None) -> Settings:
    """Build settings from the base file, an optional local file and environment variables."""
    environ = dict(os.environ if environ is None else environ)
    raw = _read_toml(BASE_CONFIG)
    if local_file is None:
        candidate = environ.get("ONEMAP_CONFIG")
        local_file = Path(candidate) if candidate else Path.cwd() / LOCAL_CONFIG_NAME
        if candidate and not local_file.is_file():
            raise SettingsError(f"ONEMAP_CONFIG points at {local_file}, which does not exist")
    if local_file.is_file():
        raw = _deep_merge(raw, _read_toml(local_file))
    raw = _deep_merge(raw, _env_overrides(environ))
    try:
        geo, demo, serve, basemap = raw["geo"], raw["demo"], raw["serve"], raw.get("map", {})
        resolutions = tuple(int(r) for r in geo["h3_resolutions"])
        settings = Settings(
            home=Path(raw["paths"]["home"]).expanduser().resolve(),
            county_code=str(geo["county_code"]),
            county_name=str(geo["county_name"]),
            areas_dir=Path(geo["areas_dir"]).expanduser().resolve() if geo.get("areas_dir") else None,
            crs=str(geo["crs"]),
            h3_resolutions=resolutions,
            h3_finest=int(geo["h3_finest"]),
            h3_default=int(geo["h3_default"]),
            timezone=str(raw["time"]["timezone"]),
            demo_seed=int(demo["seed"]),
            demo_events=int(demo["events"]),
            demo_years=int(demo["years"]),
            demo_end_date=str(demo.get("end_date", "")),
            host=str(serve["host"]),
            port=int(serve["port"]),
            refresh_seconds=int(serve["refresh_seconds"]),
            hmac_key_env=str(raw["privacy"]["hmac_key_env"]),
            small_count_suppress=int(raw["privacy"]["small_count_suppress"]),
            hotspot_time_step=int(raw.get("hotspots", {}).get("time_step", 0)),
            secure_cookies=bool(serve.get("secure_cookies", False)),
            trusted_proxy=str(serve.get("trusted_proxy", "")),
            users_file=(Path(raw["access"]["users_file"]).expanduser().resolve()
                        if raw.get("access", {}).get("users_file") else None),
            basemap=Path(basemap["basemap"]).expanduser().resolve() if basemap.get("basemap") else None,
            basemap_crs=str(basemap.get("basemap_crs", "wgs84")),
            basemap_attribution=str(basemap.get("basemap_attribution", "")),
            basemap_opacity=float(basemap.get("basemap_opacity", 0.6)),
            undo_keep=_whole(raw.get("ingest", {}).get("undo_keep", 3), "ingest.undo_keep"),
        )
    except KeyError as exc:
        raise SettingsError(f"missing setting {exc.args[0]!r} (base file {BASE_CONFIG})") from exc
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"invalid setting value: {exc}") from exc
    if settings.h3_default not in resolutions or settings.h3_finest != max(resolutions):
        raise SettingsError(
            f"geo.h3_default={settings.h3_default} must be one of geo.h3_resolutions={list(resolutions)} and "
            f"geo.h3_finest={settings.h3_finest} must be the finest of them"
        )
    if not (0 <= settings.hotspot_time_step < 26):
        raise SettingsError(f"hotspots.time_step={settings.hotspot_time_step} must be 0 (each week on its own) "
                            "up to 25 weeks")
    if not (0 <= settings.basemap_opacity <= 1):
        raise SettingsError(f"map.basemap_opacity={settings.basemap_opacity} must be between 0 and 1")
    if settings.undo_keep < 0:
        raise SettingsError(f"ingest.undo_keep={settings.undo_keep} must be 0 (no undo) or more")
    if not (0 < settings.port < 65536):
        raise SettingsError(f"serve.port={settings.port} is not a TCP port")
    return settings


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
