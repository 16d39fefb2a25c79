import dataclasses
from pathlib import Path

import pytest

from onemap.settings import SettingsError, load_settings


def test_defaults_come_from_base_toml(tmp_path):
    s = load_settings(environ={}, local_file=tmp_path / "absent.toml")
    assert s.county_code == "441502"
    assert s.timezone == "Asia/Shanghai"
    assert s.h3_default == 8 and s.h3_finest == 10
    assert s.host == "127.0.0.1" and s.port == 8050
    assert s.home == (Path.cwd() / "data").resolve()
    assert s.warehouse_path == s.home / "warehouse" / "onemap.duckdb"


def test_settings_are_frozen(tmp_path):
    s = load_settings(environ={}, local_file=tmp_path / "absent.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_local_file_then_environment_override(tmp_path):
    local = tmp_path / "local.toml"
    local.write_text('[serve]\nport = 8060\n[geo]\nh3_default = 9\n', encoding="utf-8")
    s = load_settings(environ={}, local_file=local)
    assert (s.port, s.h3_default) == (8060, 9)
    s = load_settings(environ={"ONEMAP_SERVE__PORT": "8070", "ONEMAP_HOME": str(tmp_path / "h")}, local_file=local)
    assert s.port == 8070
    assert s.home == (tmp_path / "h").resolve()


def test_a_basemap_is_off_by_default_and_set_in_the_map_section(tmp_path):
    s = load_settings(environ={}, local_file=tmp_path / "absent.toml")
    assert s.basemap is None and s.basemap_crs == "wgs84" and s.basemap_opacity == 0.6
    local = tmp_path / "local.toml"
    local.write_text('[map]\nbasemap = "tiles/county.mbtiles"\nbasemap_crs = "cgcs2000"\n', encoding="utf-8")
    s = load_settings(environ={"ONEMAP_MAP__BASEMAP_OPACITY": "0.8"}, local_file=local)
    assert s.basemap == (Path.cwd() / "tiles" / "county.mbtiles").resolve()
    assert (s.basemap_crs, s.basemap_opacity) == ("cgcs2000", 0.8)


def test_onemap_config_variable_must_exist(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(environ={"ONEMAP_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize("env, message", [
    ({"ONEMAP_GEO__H3_DEFAULT": "12"}, "h3_default"),
    ({"ONEMAP_SERVE__PORT": "70000"}, "not a TCP port"),
    ({"ONEMAP_SERVE__PORT": "abc"}, "invalid setting"),
    ({"ONEMAP_MAP__BASEMAP_OPACITY": "1.5"}, "basemap_opacity"),
])
def test_invalid_values_are_named(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=env, local_file=tmp_path / "absent.toml")


def test_broken_local_toml_is_named(tmp_path):
    local = tmp_path / "bad.toml"
    local.write_text("[serve\nport=", encoding="utf-8")
    with pytest.raises(SettingsError, match="bad.toml"):
        load_settings(environ={}, local_file=local)


def test_hmac_key_comes_from_environment_or_key_file(tmp_path, monkeypatch):
    s = load_settings(environ={"ONEMAP_HOME": str(tmp_path)}, local_file=tmp_path / "absent.toml")
    monkeypatch.delenv("ONEMAP_HMAC_KEY", raising=False)
    with pytest.raises(SettingsError, match="ONEMAP_HMAC_KEY"):
        s.hmac_key()
    s.hmac_key_file.parent.mkdir(parents=True)
    s.hmac_key_file.write_text("00ff" * 8)
    assert s.hmac_key() == bytes.fromhex("00ff" * 8)
    monkeypatch.setenv("ONEMAP_HMAC_KEY", "plain text key")
    assert s.hmac_key() == b"plain text key"


@pytest.mark.parametrize("value", ["1.5", "abc", "true"])
def test_undo_keep_must_be_a_whole_number(tmp_path, value):
    with pytest.raises(SettingsError, match="ingest.undo_keep"):
        load_settings(environ={"ONEMAP_INGEST__UNDO_KEEP": value}, local_file=tmp_path / "none.toml")
