"""Who may see what: the deployment's user accounts, each with an area (jurisdiction scope) and a role.

Accounts live in a TOML file outside the repository (``[access] users_file``, default
``<home>/secrets/users.toml``), written by ``onemap user add`` and read by the server on every sign-in, so a
change needs no restart. Passwords are stored only as salted hashes (werkzeug's scrypt), never in clear.

Roles (product.md, "personal information"):

- ``viewer`` — a non-handling role: events with a sensitive flag (domestic violence, minors) are never
  listed one by one and count on the map only where a cell holds at least ``privacy.small_count_suppress``
  of them.
- ``handler`` — a handling role (the 综治中心 staff who work the cases): sensitive events are listed in the
  drill-down and counted in full. Confidential (保密) events are listed to no one.

The area is a county, town or village code of the deployment's boundaries; the server applies it to every
page, query and export (``onemap.queries.Scope``), not by hiding widgets.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

ROLES = {"viewer": "查看（涉敏事件只看汇总）", "handler": "办理（可见涉敏事件明细）"}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 8


class AccessError(ValueError):
    """A users file or an account is invalid; the message names the file and the account."""


@dataclass(frozen=True)
class User:
    name: str            # sign-in name (ASCII letters, digits, _ . -)
    area: str            # county / town / village code: what this user sees
    role: str            # viewer / handler
    display: str = ""    # a name for the header, e.g. 新港街道综治中心
    password_hash: str = ""

    @property
    def handler(self) -> bool:
        return self.role == "handler"

    def check(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)


def _validate(path: Path, user: User) -> User:
    where = f"{path}: user {user.name!r}"
    if not NAME.match(user.name):
        raise AccessError(f"{where}: a user name is 1-64 ASCII letters, digits, '_', '.' or '-'")
    if user.role not in ROLES:
        raise AccessError(f"{where}: role {user.role!r} is not one of {', '.join(ROLES)}")
    if not re.fullmatch(r"\d{6}(\d{3}){0,2}", user.area):
        raise AccessError(f"{where}: area {user.area!r} is not a 6-, 9- or 12-digit county / town / village code")
    if not user.password_hash:
        raise AccessError(f"{where}: no password (set one with `onemap user add {user.name} ... --force`)")
    return user


def load_users(path: Path) -> dict[str, User]:
    """The accounts in ``path`` ({} when the file does not exist); every entry is checked."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AccessError(f"{path}: not a valid TOML users file: {exc}") from exc
    users = {}
    for name, entry in (raw.get("users") or {}).items():
        if not isinstance(entry, dict):
            raise AccessError(f"{path}: users.{name} must be a table")
        users[name] = _validate(path, User(name=str(name), area=str(entry.get("area", "")),
                                           role=str(entry.get("role", "viewer")), display=str(entry.get("display", "")),
                                           password_hash=str(entry.get("password", ""))))
    return users


def _toml_string(text: str) -> str:
    """A TOML basic string: backslash, quote and the control characters TOML forbids (U+0000-U+001F, U+007F)
    escaped; everything else, Chinese included, as it is."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the accounts (readable by the owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new folder: owner-only
    lines = ["# 民情地图 user accounts: written by `onemap user add`; passwords are salted scrypt hashes", ""]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += [f"[users.{_toml_string(user.name)}]", f"area = {_toml_string(user.area)}",
                  f"role = {_toml_string(user.role)}", f"display = {_toml_string(user.display)}",
                  f"password = {_toml_string(user.password_hash)}", ""]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, path)


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[dict[str, User]]:
    """The accounts, for one read-change-write at a time (the CLI and the server may both write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users = load_users(path)
        yield users
        save_users(path, users)


def _checked_password(name: str, password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"the password of {name!r} is shorter than {MIN_PASSWORD} characters")
    return generate_password_hash(password)


def add_user(path: Path, name: str, area: str, role: str, password: str, display: str = "",
             replace: bool = False) -> User:
    """Add an account (or replace one, with ``replace``) and save the file."""
    with _editing(path) as users:
        if name in users and not replace:
            raise AccessError(f"{path}: user {name!r} exists (use --force to replace it)")
        user = _validate(Path(path), User(name, str(area), role, display, _checked_password(name, password)))
        users[name] = user
    return user


def change_password(path: Path, name: str, old: str, new: str) -> None:
    """A user's own change of password: the old one must be right; area and role stay."""
    with _editing(path) as users:
        user = users.get(name)
        if user is None or not user.check(old):
            raise AccessError("原密码不正确")
        if new == old:
            raise AccessError("新密码与原密码相同")
        users[name] = dataclasses.replace(user, password_hash=_checked_password(name, new))


def remove_user(path: Path, name: str) -> None:
    with _editing(path) as users:
        if name not in users:
            raise AccessError(f"{path}: no user {name!r}")
        del users[name]


@dataclass(frozen=True)
class DemoAccount:
    name: str
    area: str
    role: str
    display: str
    password: str


# The synthetic demo county's accounts (geodata/demo): one per tier, documented in README and shown on the
# sign-in page of a deployment whose boundaries are synthetic. `onemap demo` creates them only when the
# deployment has no users file yet; a real deployment adds its own with `onemap user add`.
DEMO_ACCOUNTS = (
    DemoAccount("county", "441502", "handler", "城区综治中心", "demo-county"),
    DemoAccount("xingang", "441502001", "viewer", "新港街道综治中心", "demo-town"),
    DemoAccount("haijing", "441502001001", "viewer", "海景社区", "demo-village"),
)
