"""`onemap serve` as a deployment runs it: a real process on waitress, answering on 127.0.0.1 only."""
import http.client
import os
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return conn.getresponse()


def test_onemap_serve_answers_with_the_sign_in_page_and_guards_the_rest(demo_home):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "onemap.cli", "--home", str(demo_home), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        assert "serving 民情地图 at http://127.0.0.1:" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                first = _get(port, "/")
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert first.status == 302 and first.getheader("Location").endswith("/login?next=/")
        assert first.getheader("Server") == "onemap"  # waitress, not Flask's development server
        login = _get(port, "/login")
        assert login.status == 200 and "登录" in login.read().decode("utf-8")
        assert _get(port, "/_dash-layout").status == 401
        assert _get(port, "/assets/style.css").status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_behind_a_trusted_proxy_the_access_log_records_the_users_address(demo_home, tmp_path):
    """[serve] trusted_proxy: the proxy's X-Forwarded-For is believed (and only the proxy's)."""
    import json

    port = _free_port()
    users = tmp_path / "users.toml"  # sign-in needs a users file; one account is enough here
    env = dict(os.environ, ONEMAP_SERVE__TRUSTED_PROXY='"127.0.0.1"', ONEMAP_ACCESS__USERS_FILE=str(users),
               ONEMAP_HOME=str(demo_home), PW="proxy-test-password")
    subprocess.run([sys.executable, "-m", "onemap.cli", "user", "add", "proxied", "--area", "441502",
                    "--password-env", "PW"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "onemap.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log = demo_home / "logs" / "access.jsonl"
    start_at = log.stat().st_size if log.exists() else 0
    try:
        proc.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/login", body="user=nobody&password=x&token=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      "X-Forwarded-For": "10.1.2.3"})
                conn.getresponse().read()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with log.open(encoding="utf-8") as fh:
        fh.seek(start_at)
        lines = [json.loads(line) for line in fh]
    assert lines and lines[-1]["ip"] == "10.1.2.3"
