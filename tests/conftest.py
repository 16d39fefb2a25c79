"""Shared fixtures. Real public datasets live in ../shared/data beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ONEMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; the test is skipped (and says why) only when that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not present: {SHARED_DATA} is absent (../shared is not checked out here)")
    return SHARED_DATA


DEMO_END = "2026-11-15"
DEMO_EVENTS = 8000
TEST_HMAC_KEY = "6f6e656d61702d746573742d6b65792d6e6f742d736563726574"  # test-only key, not a deployment secret


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A small demo county loaded and built once per test session: generate -> ingest -> build."""
    home = tmp_path_factory.mktemp("onemap_home")
    os.environ.setdefault("ONEMAP_HMAC_KEY", TEST_HMAC_KEY)
    from onemap.cli import main

    code = main(["--home", str(home), "demo", "--events", str(DEMO_EVENTS), "--end-date", DEMO_END, "--seed", "7",
                 "--no-serve", "--quiet"])
    assert code == 0
    return home


@pytest.fixture(scope="session")
def demo_settings(demo_home):
    from onemap.settings import load_settings

    return load_settings(environ={**os.environ, "ONEMAP_HOME": str(demo_home)})


@pytest.fixture(scope="module")
def con(demo_settings):
    """A read-only connection to the demo county's warehouse, one per test module."""
    from onemap.warehouse import connect_readonly

    c = connect_readonly(demo_settings.warehouse_path)
    yield c
    c.close()
