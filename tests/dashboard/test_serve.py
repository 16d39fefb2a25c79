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
