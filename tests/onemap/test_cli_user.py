"""`onemap user add|list|remove`, and the --area options of report, alerts and serve, as an administrator runs them."""
from __future__ import annotations

import json

import pytest

from onemap.access import load_users
from onemap.cli import main


@pytest.fixture()
def users_file(tmp_path, monkeypatch):
    path = tmp_path / "users.toml"
    monkeypatch.setenv("ONEMAP_ACCESS__USERS_FILE", str(path))
    return path


def _run(demo_home, *args) -> int:
    return main(["--home", str(demo_home), *args])


def test_add_list_and_remove_accounts(demo_home, users_file, monkeypatch, capsys):
    monkeypatch.setenv("PW", "a-long-password")
    assert _run(demo_home, "user", "add", "xg01", "--area", "441502001", "--role", "handler",
                "--display", "新港街道综治中心", "--password-env", "PW") == 0
    assert "新港街道 (town 441502001)" in capsys.readouterr().out
    user = load_users(users_file)["xg01"]
    assert user.handler and user.check("a-long-password")
    assert _run(demo_home, "user", "list") == 0
    assert "xg01" in capsys.readouterr().out
    # an area that is not in the deployment's boundaries, or a grid, is refused with the reason
    assert _run(demo_home, "user", "add", "x2", "--area", "441599001", "--password-env", "PW") == 2
    assert "no area with code '441599001'" in capsys.readouterr().err
    assert _run(demo_home, "user", "add", "xg01", "--area", "441502002", "--password-env", "PW") == 2
    assert "exists" in capsys.readouterr().err
    assert _run(demo_home, "user", "remove", "xg01") == 0
    assert load_users(users_file) == {} and users_file.exists()
    capsys.readouterr()
    assert _run(demo_home, "user", "list") == 0
    assert "no one can sign in" in capsys.readouterr().out


def test_a_password_is_asked_twice_at_the_prompt(demo_home, users_file, monkeypatch, capsys):
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert _run(demo_home, "user", "add", "v1", "--area", "441502001001") == 2
    assert "differ" in capsys.readouterr().err and not users_file.exists()


def test_alerts_and_report_for_one_town(demo_home, demo_settings, tmp_path, capsys):
    import docx

    from onemap import queries
    from onemap.warehouse import connect_readonly

    con = connect_readonly(demo_settings.warehouse_path)
    towns = list(queries.child_areas(con, None)["code"])
    con.close()
    assert _run(demo_home, "alerts", "--format", "json") == 0
    county = json.loads(capsys.readouterr().out)
    per_town = 0
    for town in towns:
        assert _run(demo_home, "alerts", "--area", town, "--format", "json") == 0
        per_town += len(json.loads(capsys.readouterr().out))
    assert per_town == len(county)
    assert _run(demo_home, "report", "--area", "441502001", "--format", "docx", "--out", str(tmp_path)) == 0
    written = capsys.readouterr().out.strip()
    assert "新港街道" in written
    assert "新港街道" in docx.Document(written).paragraphs[0].text


def test_serve_area_is_for_the_wall_screen_only(demo_home, capsys):
    assert _run(demo_home, "serve", "--area", "441502001") == 2
    assert "--kiosk" in capsys.readouterr().err


def test_the_secrets_folder_is_owner_only(tmp_path, monkeypatch):
    """<home>/secrets holds the session key, the demo's pseudonym key and the default users file: 0700, and one
    an earlier version made readable by all is tightened."""
    from onemap.settings import load_settings

    settings = load_settings(environ={"ONEMAP_HOME": str(tmp_path / "h")}, local_file=tmp_path / "absent.toml")
    (tmp_path / "h" / "secrets").mkdir(parents=True, mode=0o755)
    (tmp_path / "h" / "secrets").chmod(0o755)
    assert settings.secrets_dir().stat().st_mode & 0o777 == 0o700
    from dashboard.auth import session_key

    session_key(settings)
    assert settings.session_key_file.stat().st_mode & 0o777 == 0o600
