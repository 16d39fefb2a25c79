"""What one map update costs the server and the network: the map callback (figure and KPI strip) per layer, served
through Dash as a signed-in county user, with the outlines as URLs the browser fetches once (now) side by side
with the same figure carrying its outline GeoJSON inline (before: the baseline of the ratios).

    .venv/bin/python bench/map_payload.py                # builds the 200,000-event demo county in a temp folder
    .venv/bin/python bench/map_payload.py --home DIR     # an existing home (e.g. one made by `onemap demo`)

Prints ms p50 / p95 over repeated calls and the response size in KB, per layer and hex size.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VIEWS = (("受理数 H3-8", "counts", 8), ("受理数 H3-10", "counts", 10), ("超期 H3-8", "overdue", 8),
         ("积案回放 H3-8", "backlog", 8), ("新兴热点", "hotspots", 8))


def _client(home: Path):
    from dashboard import app as app_module
    from onemap.settings import load_settings

    settings = load_settings(environ={**os.environ, "ONEMAP_HOME": str(home)})
    client = app_module.create_app(settings).server.test_client()
    page = client.get("/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    client.post("/login", data={"user": "county", "password": "demo-county", "next": "/", "token": token})
    return app_module, client


def _timed(client, dep, last, layer: str, resolution: int, runs: int) -> tuple[list[float], int]:
    import datetime as dt

    values = {"dates.start_date": f"{last - dt.timedelta(days=27)}", "dates.end_date": f"{last}",
              "categories.value": [], "sources.value": [], "url.search": "", "resolution.value": resolution,
              "layer.value": layer, "refresh.n_intervals": None}
    body = json.dumps({
        "output": dep["output"], "changedPropIds": ["layer.value"], "state": [],
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in dep["output"].strip(".").split("...")],
        "inputs": [{"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
                   for i in dep["inputs"]]})
    times, size = [], 0
    for _ in range(runs + 1):
        start = time.perf_counter()
        resp = client.post("/_dash-update-component", data=body, content_type="application/json")
        times.append((time.perf_counter() - start) * 1000)
        assert resp.status_code == 200, resp.data[:200]
        size = len(resp.data)
    return times[1:], size  # the first call warms the caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an onemap home with a built warehouse (default: build the demo)")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    home = args.home
    if home is None:
        from onemap.cli import main as cli

        home = Path(tempfile.mkdtemp(prefix="onemap_payload_"))
        cli(["--home", str(home), "demo", "--no-serve", "--quiet"])
    app_module, client = _client(home)
    from onemap import queries
    from onemap.warehouse import connect_readonly

    con = connect_readonly(home / "warehouse" / "onemap.duckdb")
    last = queries.date_bounds(con)[1]
    events = con.execute("SELECT count(*) FROM core.events").fetchone()[0]
    dep = next(d for d in client.get("/_dash-dependencies").get_json() if "map.figure" in d["output"])
    urls = app_module._outline_urls
    print(f"{events:,} events; map callback as the county user, {args.runs} runs each (after one warm-up)")
    print(f"{'view':<16}{'outlines':<10}{'p50 ms':>9}{'p95 ms':>9}{'KB':>8}{'ratio p50':>11}{'ratio KB':>10}")
    for name, layer, resolution in VIEWS:
        app_module._outline_urls = lambda data, scope, outlines: outlines  # noqa: ARG005 - the baseline: inline
        base, base_kb = _timed(client, dep, last, layer, resolution, args.runs)
        app_module._outline_urls = urls
        now, now_kb = _timed(client, dep, last, layer, resolution, args.runs)
        for label, t, kb in (("inline", base, base_kb), ("URL", now, now_kb)):
            p50, p95 = statistics.median(t), sorted(t)[max(0, round(0.95 * len(t)) - 1)]
            ratio = statistics.median(base) / p50
            print(f"{name:<16}{label:<10}{p50:>9.0f}{p95:>9.0f}{kb / 1024:>8.0f}{ratio:>11.2f}{base_kb / kb:>10.2f}")


if __name__ == "__main__":
    main()
