"""Fixtures shared by the pipeline tests: a fresh deployment home, the demo county and a point inside a
demo grid."""
import pytest

from geodata.areas import demo_area_set
from onemap.settings import load_settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEMAP_HMAC_KEY", "ab" * 16)
    return load_settings(environ={"ONEMAP_HOME": str(tmp_path / "home"), "ONEMAP_HMAC_KEY": "ab" * 16},
                         local_file=tmp_path / "none.toml")


@pytest.fixture(scope="session")
def areas():
    return demo_area_set()


@pytest.fixture
def inside(areas):
    g = areas.grids
    p = g.geometry.iloc[200].representative_point()
    return p.x, p.y, str(g["code"].iloc[200])


