"""User accounts: the users file round-trips, stores no clear password, and names the file and account on errors."""
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onemap.access import AccessError, add_user, load_users, remove_user, save_users


def test_accounts_round_trip_and_keep_only_a_salted_hash(tmp_path):
    path = tmp_path / "secrets" / "users.toml"
    add_user(path, "xingang", "441502001", "viewer", "s3cret-town", display="新港街道综治中心")
    add_user(path, "county", "441502", "handler", "s3cret-county")
    users = load_users(path)
    assert set(users) == {"xingang", "county"}
    town = users["xingang"]
    assert (town.area, town.role, town.display, town.handler) == ("441502001", "viewer", "新港街道综治中心", False)
    assert users["county"].handler
    assert town.check("s3cret-town") and not town.check("s3cret-county") and not town.check("")
    text = path.read_text(encoding="utf-8")
    assert "s3cret" not in text and "scrypt:" in text
    # two accounts with the same password still differ: the hash is salted
    add_user(path, "other", "441502001", "viewer", "s3cret-town")
    assert load_users(path)["other"].password_hash != load_users(path)["xingang"].password_hash
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    remove_user(path, "other")
    assert set(load_users(path)) == {"xingang", "county"}


def test_no_file_means_no_accounts(tmp_path):
    assert load_users(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "bad name"}, "user name"),
    ({"role": "admin"}, "role 'admin'"),
    ({"area": "4415020010011"}, "county / town / village code"),
    ({"area": "abc"}, "county / town / village code"),
    ({"password": "short"}, "shorter than 8"),
])
def test_bad_accounts_are_refused_with_the_reason(tmp_path, kwargs, message):
    args = {"name": "u1", "area": "441502001", "role": "viewer", "password": "long-enough"} | kwargs
    with pytest.raises(AccessError, match=message):
        add_user(tmp_path / "users.toml", **args)
    assert load_users(tmp_path / "users.toml") == {}


def test_an_existing_account_is_replaced_only_when_asked(tmp_path):
    path = tmp_path / "users.toml"
    add_user(path, "u1", "441502001", "viewer", "first-password")
    with pytest.raises(AccessError, match="exists"):
        add_user(path, "u1", "441502002", "viewer", "second-password")
    add_user(path, "u1", "441502002", "handler", "second-password", replace=True)
    user = load_users(path)["u1"]
    assert (user.area, user.role) == ("441502002", "handler") and user.check("second-password")
    with pytest.raises(AccessError, match="no user 'u2'"):
        remove_user(path, "u2")


@pytest.mark.parametrize(("text", "message"), [
    ("[users.u1\narea = 1", "not a valid TOML"),
    ('[users.u1]\narea = "441502001"\nrole = "viewer"\n', "no password"),
    ('[users.u1]\narea = "441502001"\nrole = "boss"\npassword = "x"\n', "role 'boss'"),
    ('users = { u1 = 3 }\n', "must be a table"),
])
def test_a_broken_users_file_names_the_file_and_the_account(tmp_path, text, message):
    path = tmp_path / "users.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AccessError, match=message) as err:
        load_users(path)
    assert str(path) in str(err.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(display=st.text(max_size=30), name=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True))
def test_any_display_name_survives_the_file(tmp_path, display, name):
    """Display names are free text (Chinese, quotes, backslashes, control characters): written and read back."""
    from werkzeug.security import generate_password_hash

    from onemap.access import User

    path = tmp_path / "users.toml"
    user = User(name, "441502001", "viewer", display, generate_password_hash("pw-12345678"))
    save_users(path, {name: user})
    assert load_users(path) == {name: user}
