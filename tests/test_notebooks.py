"""The notebooks for data staff run from top to bottom in CI, against the same code the dashboard and the CLI use."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

pytestmark = pytest.mark.slow


def _run(name: str) -> list[str]:
    """Execute a notebook in a fresh kernel from the repository root; the text of every output, cell by cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
        texts.append("".join(parts))
    return texts


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TESTED)


def test_load_and_check_an_export(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEMAP_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("ONEMAP_HMAC_KEY", "the-deployments-key")  # a data directory of one's own: its own key
    out = _run(TESTED[0])
    text = "\n".join(out)
    assert "dry run, nothing written" in text
    assert text.count("[ok]") == 6 and "DOES NOT RECONCILE" not in text  # three files, dry run and load
    # the hand-made late entries: each planted mistake is quarantined with its field, listed by reason
    for reason in ("time_in_future", "unknown_category", "bad_coordinate", "closed_before_reported",
                   "duplicate_in_file"):
        assert reason in out[5]
    # ... and come back in the file's own layout, to correct and load again
    assert "BL0000" in out[6] and "事件类型代码" in out[6] and "[5 rows x" in out[6]
    assert "网格巡查上报_补录.csv: read 6 / inserted 1 / updated 0 / unchanged 0 / linked 0 / quarantined 5" in text
    assert (tmp_path / "warehouse" / "onemap.duckdb").is_file()


def test_kpis_alerts_hotspots_and_backtest(demo_home, monkeypatch, tmp_path):
    import shutil

    home = tmp_path / "home"  # a copy: the notebook writes its GeoPackage under the data directory
    shutil.copytree(demo_home, home)
    monkeypatch.setenv("ONEMAP_HOME", str(home))
    out = _run(TESTED[1])
    text = "\n".join(out)
    assert "受理数" in text and "办结率" in text
    assert "【" in text  # alert sentences
    assert "热点" in text
    assert "合计" in text and "跟踪督办" in text and "oldest_days" in text  # 积案 by stage and by town
    assert (home / "exports" / "labour_disputes_res8.gpkg").is_file()
    assert "PEI" in out[-2] or "not here" in out[-2]


TESTED = ["1.0-om-load-and-check-an-export.ipynb", "2.0-om-kpis-alerts-hotspots-forecast.ipynb"]
