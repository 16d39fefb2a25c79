"""`onemap backtest --dataset warehouse`: the forecast's rolling-origin backtest on the deployment's own events."""
import pandas as pd

from onemap.cli import main


def test_the_backtest_runs_on_the_warehouses_own_events(demo_home, tmp_path, capsys):
    out = tmp_path / "bt.csv"
    assert main(["--home", str(demo_home), "backtest", "--dataset", "warehouse", "--resolution", "8",
                 "--max-origins", "2", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "warehouse @ H3 res 8: this deployment's located events" in text and "2 origins" in text
    results = pd.read_csv(out)
    assert set(results["model"]) >= {"forecaster", "last-4", "all-history"} and results["origin"].nunique() == 2
    assert (results["pei"].between(0, 1)).all() and (results["pai"] <= results["ceiling_pai"] + 1e-9).all()
    # narrowed to one source: fewer events per window
    assert main(["--home", str(demo_home), "backtest", "--dataset", "warehouse", "--resolution", "8",
                 "--max-origins", "1", "--source", "police"]) == 0
    assert "(police)" in capsys.readouterr().out


def test_max_origins_must_be_at_least_one(demo_home, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--home", str(demo_home), "backtest", "--dataset", "warehouse", "--max-origins", "0"])
    assert "must be at least 1" in capsys.readouterr().err
