"""Sign-in and the current viewer: who asks decides what every page, callback and download may read.

When the deployment's users file holds any account, every route but the sign-in page and the static
files needs a signed-in session: a page is redirected to ``/login``, a callback or download gets 401. The
session carries the user name only; the user's area and role are looked up again on every request, so
removing an account or changing its area takes effect at once. Without a users file the map is open on
the machine it runs on (``onemap serve`` refuses other addresses then) and shows the whole county to a
non-handling viewer. The wall screen (``serve --kiosk``) is a public display with a fixed area.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import flask

from onemap import queries
from onemap.access import MIN_PASSWORD, ROLES, AccessError, User, change_password, load_users
from onemap.settings import Settings

OPEN_PREFIXES = ("/login", "/logout", "/assets/", "/_dash-component-suites/", "/_favicon.ico", "/favicon.ico")
FAILED_SIGN_IN_DELAY = 0.5  # seconds; slows password guessing
LOCK_AFTER = 5              # failed sign-ins of one user name within LOCK_SECONDS lock that name for LOCK_SECONDS
LOCK_SECONDS = 15 * 60
LOG_TAIL_BYTES = 4 << 20    # how much of the access log's end a starting server reads for recent failed sign-ins


@dataclass(frozen=True)
class Viewer:
    """The person (or screen) a request is served to."""
    name: str
    scope: queries.Scope
    handler: bool = False   # a handling role: sensitive events listed and counted in full
    public: bool = False    # the wall screen: small counts left out altogether
    label: str = ""
    unit: str = ""          # who the account is, as colleagues know it (users file: display), e.g. 新港街道综治中心

    def hex_privacy(self, small: int) -> dict:
        """hex_counts keywords for this viewer (``small``: privacy.small_count_suppress)."""
        if self.public:  # at least as strict as any signed-in viewer: sensitive events first, then small hexes
            return {"min_count": small, "sensitive_min": small}
        return {} if self.handler else {"sensitive_min": small}


def session_key(settings: Settings) -> bytes:
    """The key signing the session cookies: <home>/secrets/session.key, made on first use (owner-only)."""
    path = settings.session_key_file
    if not path.is_file():
        settings.secrets_dir()
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())


class Gate:
    """Accounts, sign-in routes and the per-request viewer of one app."""

    def __init__(self, settings: Settings, con_factory, kiosk_scope: queries.Scope | None = None):
        self.settings = settings
        self.con = con_factory
        self.kiosk_scope = kiosk_scope
        self._users: tuple[tuple[int, int] | None, dict[str, User]] = ((-1, -1), {})
        self._log_lock = threading.Lock()
        # user name -> times (epoch seconds) of recent failed sign-ins; started from the access log, so that
        # restarting the server does not lift a lock-out
        self._failures: dict[str, list[float]] = self._failures_in_log()

    @property
    def audit_path(self):
        """<home>/logs/access.jsonl: who signed in, and who downloaded or listed what (one JSON object a line)."""
        return self.settings.logs_dir / "access.jsonl"

    def record(self, action: str, **fields) -> None:
        """Append one line to the access log: time, user, area, action and what it was about. Never events'
        content, only what was asked for."""
        viewer = self.current() if not action.startswith("sign_in_") else None
        line = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "action": action,
                "user": viewer.name if viewer else fields.pop("user", None),
                "area": viewer.scope.code if viewer and not viewer.scope.whole else None, **fields,
                "ip": flask.request.remote_addr if flask.has_request_context() else None}
        try:
            with self._log_lock:
                self.audit_path.parent.mkdir(parents=True, exist_ok=True)
                with self.audit_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:  # a full or read-only disk must not take the map down; say so in the server log
            logging.getLogger(__name__).error("cannot write the access log %s: %s", self.audit_path, exc)

    def users(self) -> dict[str, User]:
        """The accounts, read again whenever the file changes (it is replaced, never edited in place)."""
        path = self.settings.users_path
        stamp = (path.stat().st_ino, path.stat().st_mtime_ns) if path.is_file() else None
        if stamp != self._users[0]:
            self._users = (stamp, load_users(path))
        return self._users[1]

    @property
    def kiosk(self) -> bool:
        return self.kiosk_scope is not None

    def sign_in_required(self) -> bool:
        """Whenever a users file exists, even with every account removed from it (then no one gets in)."""
        return not self.kiosk and self.settings.users_path.is_file()

    def current(self) -> Viewer | None:
        """The viewer of the current request, or None outside a request or before sign-in (Dash builds the
        layout once at start-up and on its first request, whichever that is, to validate it)."""
        if not flask.has_request_context():
            return None
        if self.sign_in_required() and flask.session.get("user") not in self.users():
            return None
        return self.viewer()

    def viewer(self) -> Viewer:
        """The viewer of the current request (call inside a request: a page, a callback, a download)."""
        if self.kiosk:
            return Viewer("wall-screen", self.kiosk_scope, public=True, label="大屏")
        if not self.sign_in_required():
            return Viewer("local", queries.COUNTY, label="本机（未设用户）")
        user = self.users().get(flask.session.get("user", ""))
        if user is None:
            flask.abort(401)
        try:
            scope = queries.area_scope(self.con(), user.area)
        except ValueError as exc:  # e.g. a village merged away in a new boundary vintage (村居合并)
            flask.abort(403, description=f"账号 {user.name} 的辖区已不在当前边界中，请联系管理员：{exc}")
        unit = user.display or user.name
        return Viewer(user.name, scope, handler=user.handler, unit=unit,
                      label=" · ".join(dict.fromkeys([unit, scope.name, ROLES[user.role][:2]])))

    def install(self, server: flask.Flask) -> None:
        self.users()  # a broken users file stops the server at start, naming the file, not at someone's sign-in
        server.secret_key = session_key(self.settings)
        server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                             SESSION_COOKIE_SECURE=self.settings.secure_cookies,
                             PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12))

        @server.before_request
        def guard():
            path = flask.request.path
            if not self.sign_in_required() or path.startswith(OPEN_PREFIXES):
                return None
            if flask.session.get("user") in self.users():
                return None
            if flask.request.method == "GET" and not path.startswith("/_"):
                return flask.redirect(f"/login?next={path}")
            return flask.Response("sign in first", status=401)

        @server.route("/login", methods=["GET", "POST"])
        def login():
            error = ""
            target = _safe_next(flask.request.values.get("next", "/"))
            if flask.request.method == "POST":
                name = flask.request.form.get("user", "")[:64]
                user = self.users().get(name)
                if not secrets.compare_digest(flask.request.form.get("token", ""), flask.session.get("token", "-")):
                    error = "登录页已过期，请重新输入"  # no token of this session: not our form (or a stale one)
                    self.record("sign_in_refused", user=name, reason="form token")
                elif self._locked(name):
                    self.record("sign_in_locked", user=name)
                    error = f"该账号连续登录失败 {LOCK_AFTER} 次，请 {LOCK_SECONDS // 60} 分钟后再试"
                elif user is not None and user.check(flask.request.form.get("password", "")):
                    self._failures.pop(name, None)
                    flask.session.clear()
                    flask.session["user"] = user.name
                    flask.session.permanent = True
                    self.record("sign_in")
                    return flask.redirect(target)
                else:
                    self._failures.setdefault(name, []).append(time.time())
                    self.record("sign_in_failed", user=name)
                    time.sleep(FAILED_SIGN_IN_DELAY)
                    error = "用户名或密码不正确"
            flask.session["token"] = flask.session.get("token") or secrets.token_urlsafe(24)
            return flask.render_template_string(LOGIN_PAGE, css=FORM_CSS, title=self.settings.county_name, error=error,
                                                target=target, token=flask.session["token"],
                                                demo=self._demo_accounts()), (401 if error else 200)

        @server.route("/password", methods=["GET", "POST"])
        def password():
            """A signed-in user's own change of password (the guard has already checked the session)."""
            message, ok = "", False
            if flask.request.method == "POST":
                form = flask.request.form
                if not secrets.compare_digest(form.get("token", ""), flask.session.get("token", "-")):
                    message = "页面已过期，请重新输入"
                elif form.get("new", "") != form.get("again", ""):
                    message = "两次输入的新密码不一致"
                elif len(form.get("new", "")) < MIN_PASSWORD:
                    message = f"新密码至少 {MIN_PASSWORD} 个字符"
                else:
                    try:
                        change_password(self.settings.users_path, flask.session["user"], form.get("old", ""),
                                        form["new"])
                        message, ok = "密码已修改", True
                        self.record("password_changed")
                    except AccessError as exc:
                        message = str(exc)
                        self.record("password_change_failed")
            flask.session["token"] = flask.session.get("token") or secrets.token_urlsafe(24)
            return flask.render_template_string(PASSWORD_PAGE, css=FORM_CSS, title=self.settings.county_name,
                                                message=message,
                                                ok=ok, token=flask.session["token"]), (200 if ok or not message else 400)

        @server.route("/logout")
        def logout():
            if flask.session.get("user"):
                self.record("sign_out")
            flask.session.clear()
            return flask.redirect("/login")

    def _failures_in_log(self) -> dict[str, list[float]]:
        """The failed sign-ins of the last LOCK_SECONDS in the access log, per name; a successful sign-in clears
        the name's earlier ones, as it does while the server runs. Only the log's tail is read (a lock-out's
        window is minutes, the log holds years); an unreadable log starts with none, and says so."""
        failures: dict[str, list[float]] = {}
        since = time.time() - LOCK_SECONDS
        try:
            with self.audit_path.open("rb") as fh:
                start = max(0, fh.seek(0, 2) - LOG_TAIL_BYTES)
                fh.seek(start)
                tail = fh.read().decode("utf-8", errors="replace").splitlines()[1 if start else 0:]  # whole lines
        except FileNotFoundError:
            return failures
        except OSError as exc:
            logging.getLogger(__name__).error("cannot read the access log %s: %s", self.audit_path, exc)
            return failures
        for line in tail:
            try:
                entry = json.loads(line)
                at = dt.datetime.fromisoformat(entry["at"]).timestamp()
                action, name = entry["action"], entry.get("user")
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line (a disk that filled mid-write)
            if at < since or not name:
                continue
            if action == "sign_in_failed":
                failures.setdefault(name, []).append(at)
            elif action == "sign_in":
                failures.pop(name, None)
        return failures

    def _locked(self, name: str) -> bool:
        """Whether ``name`` had LOCK_AFTER failed sign-ins within the last LOCK_SECONDS (this run's and, from the
        access log, the previous run's)."""
        now = time.time()
        recent = [t for t in self._failures.get(name, []) if now - t < LOCK_SECONDS]
        self._failures[name] = recent
        return len(recent) >= LOCK_AFTER

    def _demo_accounts(self) -> list[tuple[str, str, str]]:
        """The documented demo accounts, shown on the sign-in page of the synthetic demo county only."""
        from onemap.access import DEMO_ACCOUNTS

        if not queries.boundaries_synthetic(self.con()):
            return []
        users = self.users()
        return [(a.name, a.password, a.display) for a in DEMO_ACCOUNTS
                if a.name in users and users[a.name].check(a.password)]


def _safe_next(target: str) -> str:
    """Only a path on this server (no scheme, no host): the sign-in page must not redirect elsewhere."""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


# the sign-in and password pages' look (inline: a file in assets/ would also style the map page)
FORM_CSS = """
body { background:#0b1a2e; color:#dfe7f1; font-family:"Noto Sans CJK SC","Noto Sans SC",sans-serif;
       display:flex; align-items:center; justify-content:center; height:100vh; margin:0; }
form { background:#102640; padding:32px 40px; border-radius:8px; min-width:320px; }
h1 { font-size:22px; margin:0 0 20px; }
label { display:block; margin:12px 0 4px; font-size:14px; }
input { width:100%; padding:8px; font-size:16px; box-sizing:border-box; border-radius:4px; border:1px solid #35557a;
        background:#0b1a2e; color:#dfe7f1; }
button { margin-top:20px; width:100%; padding:10px; font-size:16px; background:#2f7f8f; color:#fff; border:0;
         border-radius:4px; cursor:pointer; }
.error { color:#ff8a8a; margin-top:12px; }
.demo { margin-top:20px; font-size:13px; color:#9fb3c8; }
.demo td { padding:2px 8px 2px 0; }
.done { color:#8fe08f; margin-top:12px; }
.demo a { color:#7fd1e0; }
"""

PASSWORD_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>修改密码 · 民情地图 · {{ title }}</title>
<style>{{ css|safe }}</style></head>
<body><form method="post" action="/password">
<h1>修改密码</h1>
<input type="hidden" name="token" value="{{ token }}">
<label for="old">原密码</label><input id="old" name="old" type="password" autocomplete="current-password" autofocus>
<label for="new">新密码</label><input id="new" name="new" type="password" autocomplete="new-password">
<label for="again">再输入一次</label><input id="again" name="again" type="password" autocomplete="new-password">
<button type="submit" id="change">修改</button>
{% if message %}<div class="{{ 'done' if ok else 'error' }}" id="password-message">{{ message }}</div>{% endif %}
<div class="demo"><a href="/">返回地图</a></div>
</form></body></html>
"""

LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>登录 · 民情地图 · {{ title }}</title>
<style>{{ css|safe }}</style></head>
<body><form method="post" action="/login">
<h1>民情地图 · {{ title }}</h1>
<input type="hidden" name="next" value="{{ target }}">
<input type="hidden" name="token" value="{{ token }}">
<label for="user">用户名</label><input id="user" name="user" autocomplete="username" autofocus>
<label for="password">密码</label><input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" id="sign-in">登录</button>
{% if error %}<div class="error" id="login-error">{{ error }}</div>{% endif %}
{% if demo %}<div class="demo">演示账号（合成数据，仅供演示）：<table>
{% for name, password, display in demo %}<tr><td>{{ name }}</td><td>{{ password }}</td><td>{{ display }}</td></tr>{% endfor %}
</table></div>{% endif %}
</form></body></html>
"""
