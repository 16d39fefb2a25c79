"""The `onemap` command line.

The kernel must not import the layers above it at module level; each subcommand imports what it needs
when it runs (the import-linter contract lists these deliberate exceptions).
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from onemap.settings import Settings, SettingsError, get_settings, reset_settings_cache


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "home", None):
        os.environ["ONEMAP_HOME"] = str(args.home)
        reset_settings_cache()
    return get_settings()


def _ensure_demo_key(settings: Settings) -> None:
    """The demo needs a pseudonym key; a real deployment provides its own (environment or key file)."""
    if os.environ.get(settings.hmac_key_env) or settings.hmac_key_file.is_file():
        return
    settings.secrets_dir()
    settings.hmac_key_file.write_text(secrets.token_hex(32), encoding="utf-8")
    settings.hmac_key_file.chmod(0o600)
    print(f"generated a pseudonym key for the demo at {settings.hmac_key_file} (keep it secret; "
          f"deployments set {settings.hmac_key_env})")


def cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from pipelines.build import build
    from pipelines.demo_generator import DemoGenerator
    from pipelines.ingest import area_set_from_files, ingest

    settings = _settings(args)
    out = Path(args.out) if args.out else settings.home / "demo_exports"
    t0 = time.perf_counter()
    gen = DemoGenerator(area_set_from_files(settings), n_events=args.events or settings.demo_events,
                        years=settings.demo_years, end_date=args.end_date or settings.demo_end_date or None,
                        seed=args.seed if args.seed is not None else settings.demo_seed)
    result = gen.generate(out)
    print(f"generated {result.n_events:,} events for {settings.county_name} in {time.perf_counter() - t0:.1f} s "
          f"-> {out} (ground truth in {result.truth_dir})")
    _ensure_demo_key(settings)
    # statuses dated, and the build made, at the moment the exports were taken (DemoResult.taken_at), a second
    # apart in this order
    taken = result.taken_at.tz_localize(settings.timezone)
    for i, (source, files, profile) in enumerate((("grid", result.grid_files, None),
                                                  ("police", result.police_files, None),
                                                  ("grid", result.update_files, None),
                                                  ("grid", result.flow_files[:1], "demo_grid_flow"),
                                                  ("police", result.flow_files[1:], "demo_police_flow"))):
        for s in ingest(settings, source, list(files), profile_name=profile, progress=not args.quiet,
                        taken_at=taken + pd.Timedelta(seconds=i)):
            print(s.line())
    stats = build(settings, as_of=taken.ceil("D"))  # the midnight after the last day: the brief's end of that week
    print(f"built warehouse {settings.warehouse_path}: {stats['events']:,} events")
    _ensure_demo_accounts(settings)
    if args.no_serve:
        return 0
    return _serve(settings, args.host or settings.host, args.port or settings.port, kiosk=False)


def _ensure_demo_accounts(settings: Settings) -> None:
    """The demo county's documented accounts (onemap.access.DEMO_ACCOUNTS), made only when the deployment has no
    users file yet and only for areas its boundaries hold."""
    from onemap import queries
    from onemap.access import DEMO_ACCOUNTS, add_user
    from onemap.warehouse import connect_readonly

    if settings.users_path.exists():
        return
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        known = set(queries.area_names(con))
    finally:
        con.close()
    made = [a for a in DEMO_ACCOUNTS if a.area in known]
    for a in made:
        add_user(settings.users_path, a.name, a.area, a.role, a.password, a.display)
    if made:
        print("demo accounts (sign in on the map; each sees only its own area):\n"
              + "\n".join(f"  {a.name:<8} password {a.password:<13} {a.display} ({a.role})" for a in made))


def cmd_user(args: argparse.Namespace) -> int:
    import getpass

    from onemap import queries
    from onemap.access import ROLES, add_user, load_users, remove_user
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    path = settings.users_path
    if args.user_command != "list" and settings.users_file is None:
        settings.secrets_dir()  # the default users file's folder: owner-only
    if args.user_command == "list":
        users = load_users(path)
        if not users:
            print(f"no accounts in {path}: " + ("no one can sign in" if path.exists() else
                                                "the map is open on this machine only"))
        for u in users.values():
            print(f"{u.name:<16} {u.area:<13} {u.role:<8} {u.display}")
        return 0
    if args.user_command == "remove":
        remove_user(path, args.name)
        print(f"removed {args.name} from {path}")
        return 0
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        scope = queries.area_scope(con, args.area)  # the area must exist in the current boundaries
    finally:
        con.close()
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    if args.password_env and not password:
        raise ValueError(f"environment variable {args.password_env} is empty")
    if not password:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            raise ValueError("the two passwords differ")
    user = add_user(path, args.name, scope.code, args.role, password, args.display or "", replace=args.force)
    print(f"{user.name}: {scope.name} ({scope.level} {scope.code}), {ROLES[user.role]} -> {path}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest import ingest

    settings = _settings(args)
    taken = None
    if args.taken_at:
        import pandas as pd

        try:
            taken = pd.Timestamp(args.taken_at)
            # a time with its own offset is converted; one without is the deployment's wall-clock time
            taken = taken.tz_convert(settings.timezone) if taken.tzinfo else taken.tz_localize(settings.timezone)
        except ValueError as exc:
            raise SystemExit(f"onemap ingest: --taken-at {args.taken_at!r} is not a time (YYYY-MM-DD HH:MM): {exc}") from None
    summaries = ingest(settings, args.source, [Path(f) for f in args.files], profile_name=args.profile,
                       dry_run=args.dry_run, force=args.force, progress=not args.quiet, taken_at=taken,
                       sheet=args.sheet)
    print(("dry run, nothing written:\n" if args.dry_run else "") + "\n".join(s.line() for s in summaries))
    return 0 if all(s.reconciles or s.skipped for s in summaries) else 1


def cmd_build(args: argparse.Namespace) -> int:
    from pipelines.build import build

    settings = _settings(args)
    stats = build(settings, full=args.full)
    scope = "all days" if stats["days_rebuilt"] < 0 else f"{stats['days_rebuilt']} changed days"
    print(f"built {settings.warehouse_path}: {stats['events']:,} events, {stats['cell_day_rows']:,} cell-day rows "
          f"(re-aggregated {scope})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dashboard.brief_files import make_brief

    settings = _settings(args)
    for path in make_brief(settings, args.week, Path(args.out) if args.out else None, args.format, args.area):
        print(path)
    return 0


def _formats(text: str) -> tuple[str, ...]:
    """An argparse type: a comma-separated list of docx / pdf."""
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    if not formats or set(formats) - {"docx", "pdf"}:
        raise argparse.ArgumentTypeError(f"expected docx, pdf or docx,pdf, got {text!r}")
    return formats


def _date(text: str):
    """An argparse type: a YYYY-MM-DD date, or a usage error that says so."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_alerts(args: argparse.Namespace) -> int:
    from onemap import queries
    from onemap.reviews import VERDICTS, summary, with_reviews
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    since = args.since
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        scope = queries.area_scope(con, args.area) if args.area else None
        frame = queries.alerts(con, since=since, window_days=args.window, kind=args.kind, scope=scope)
        kept = queries.scored_through(con)
        left_out = queries.alert_sources_left_out(con)
        if args.summary and args.by == "area":  # the areas one level down (a village's own alerts: the village)
            level = queries.CHILD_LEVEL[(scope or queries.COUNTY).level]
            frame["area"] = queries.cell_area_names(con, frame["cell"], level if level != "grid" else "village")
    finally:
        con.close()
    frame = with_reviews(frame, settings.reviews_path)
    if args.summary:
        frame = summary(frame.assign(month=frame["window_end"].str[:7]), by=args.by).round(3)
    if left_out:
        print(f"note: {', '.join(left_out)} left out of the alerts: its data is younger than the 14 weeks the "
              "expected counts need (its first weeks would read as a rise everywhere)", file=sys.stderr)
    if since and kept["alerts_from"] and since < kept["alerts_from"]:  # on stderr: csv / json stays clean
        print(f"note: alerts are scored from {kept['alerts_from']} on (each build scores the last days of its data "
              "and keeps the alerts of earlier builds)", file=sys.stderr)

    def table() -> None:
        if args.summary:
            print(frame.to_string(index=False))
            return
        if frame.empty:
            print("no alerts" + (f" since {since}" if since else ""))
            return
        for r in frame.itertuples():
            verdict = f"  [{VERDICTS[r.review]}，{r.reviewed_by}]" if r.review in VERDICTS else ""
            family = f" {r.family}" if isinstance(r.family, str) else ""
            running = f"（连续预警自 {r.episode_start[5:]} 起）" if r.episode_start != r.window_end else ""
            print(f"{r.window_end} [{r.window_days}天 {r.kind}] score {r.score:5.1f}  q {r.q_value:.3g}{family}  "
                  f"{r.sentence_zh}{running}{verdict}")
        reviewed = frame["review"].value_counts()
        print(f"{len(frame)} alerts in {queries.episode_count(frame)} episodes (one alert a day while a place stays "
              "unusual; an episode is the run of them, episode_start its first day) (Benjamini-Hochberg false-discovery rate 0.05 within each window and family of "
              "tests — cell, neighbourhood, cell_category, neighbourhood_category, ramp_*, named after each q — so a "
              "q-value compares with those of its own family, not across them; docs/analytics.md §2); reviewed: "
              + ", ".join(f"{VERDICTS[v]} {reviewed.get(v, 0)}" for v in VERDICTS))

    _emit(frame, args.format, None, table)
    return 0


def _emit(frame, fmt: str, out: str | None, table) -> None:
    """A frame as JSON or CSV (to ``out``, with a BOM so that Excel reads the Chinese, or to stdout), or through
    ``table()`` for people."""
    if fmt == "json":
        text = frame.to_json(orient="records", force_ascii=False, date_format="iso", indent=1, double_precision=15)
    elif fmt == "csv":
        text = frame.to_csv(index=False)
    else:
        table()
        return
    if out:
        Path(out).write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
        print(f"wrote {len(frame):,} rows to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_rejects(args: argparse.Namespace) -> int:
    from onemap import quarantine
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    con = connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
    try:
        frame = quarantine.rejects(con, file=args.file, reason=args.reason, batch=args.batch)
        loaded = sorted(quarantine.loads(con)["source_file"].unique()) if frame.empty and args.file else []
        if frame.empty and args.file and args.file not in loaded:
            raise ValueError(f"no load of a file named {args.file!r}"
                             + (f"; the files loaded are: {', '.join(loaded[:20])}" if loaded else ""))
        if frame.empty and args.reason:  # a misspelt reason reads as an empty quarantine otherwise
            present = sorted(quarantine.rejects(con, file=args.file, batch=args.batch)["reason"].unique())
            if args.reason not in present:
                raise ValueError(f"no row is quarantined for reason {args.reason!r}"
                                 + (f"; the reasons present are: {', '.join(present)}" if present else ""))
        from pipelines.load import loaded_since

        # a row corrected and loaded again (or a later export of its record) is no longer outstanding
        frame = frame.assign(loaded_since=loaded_since(con, frame))
    finally:
        con.close()
    if args.outstanding:
        frame = frame[frame["loaded_since"].isna()].reset_index(drop=True)
    if args.summary:
        frame = quarantine.summary(frame)
        _emit(frame, args.format, args.out, lambda: print(frame.to_string(index=False) if len(frame)
                                                          else "nothing in quarantine"))
        return 0
    if args.raw:
        if args.format == "table":
            raise ValueError("--raw gives the rows in their file's layout: use it with --format csv or json")
        twins = frame["reason"] == "duplicate_in_file"
        if twins.any() and args.reason != "duplicate_in_file":
            # such a row shares its record id with a later row of its file, which loaded: loaded again as it is,
            # it would overwrite that record with the earlier row's content
            print(f"note: {int(twins.sum()):,} duplicate_in_file row(s) left out: each shares its id with a later "
                  "row of its file that loaded, and loading it again would overwrite that record; ask for them "
                  "with --reason duplicate_in_file, and give each a record id of its own before loading",
                  file=sys.stderr)
            frame = frame[~twins].reset_index(drop=True)
        _emit(quarantine.as_read(frame), args.format, args.out, None)
        return 0
    shown = frame.drop(columns=["raw", "batch_id"])

    def table() -> None:
        if frame.empty:
            print("nothing in quarantine" + (" for this selection" if args.file or args.reason or args.batch else ""))
            return
        print(shown.head(args.limit).drop(columns=["loaded_at"]).to_string(index=False, max_colwidth=60))
        if len(frame) > args.limit:
            print(f"… {len(frame):,} rows in all; --format csv [--out FILE] gives every one")

    _emit(shown, args.format, args.out, table)
    return 0


def _positive(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _categories(args: argparse.Namespace) -> tuple[str, ...]:
    """The --category codes, upper-cased (md10 is MD10) and checked: one that is no product category nor the start
    of one would give zeros without a word."""
    from onemap.categories import ALL_CODES

    codes = tuple(c.strip().upper() for c in args.category or ())
    wrong = [c for c in codes if not any(code.startswith(c) for code in ALL_CODES)]
    if wrong:
        raise ValueError(f"--category {', '.join(wrong)}: no product category is or begins with it (e.g. MD10, "
                         "MD1001, CG; docs/guide-zh.md lists them)")
    return codes


def cmd_kpis(args: argparse.Namespace) -> int:
    """Every KPI of a period for the county or one area, with 环比 and 同比; or (--by-area) per area one level
    down. The same definitions and queries as the map and the brief."""
    import datetime as dt

    import pandas as pd

    from onemap import queries
    from onemap.metrics import KPIS, format_changes, format_value, format_with_base
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        last = (queries.date_bounds(con) or (None, dt.date.today()))[1]
        end = args.to or last
        start = args.since or end - dt.timedelta(days=27)
        if start > end:
            raise ValueError(f"--from {start} is after --to {end}")
        scope = queries.area_scope(con, args.area) if args.area else None
        flt = queries.EventFilter(start=start, end=end, categories=_categories(args), scope=scope,
                                  sources=tuple(args.source or ()))
        as_of = queries.reference_time(con)
        starts = queries.source_starts(con)
        for name, earlier in (("环比", queries.previous_period(flt)), ("同比", queries.year_earlier(flt))):
            late = queries.late_sources(flt, earlier, starts)
            if late and not args.by_area:  # on stderr: csv / json stays clean
                print(f"note: {name} blank: " + ", ".join(f"{s} has data from {starts[s]} only" for s in late)
                      + f" (the earlier period starts {earlier.start}); --source compares the others", file=sys.stderr)
        if args.by_area:
            frame = queries.area_kpis(con, flt, as_of)
            shown = frame[["code", "name", *(k.key for k in KPIS)]]
            if args.format == "table":
                shown = pd.DataFrame({"code": frame["code"], "name": frame["name"], **{
                    k.label: [format_with_base(k, r[k.key], r.get(f"base_{k.key}")) for _, r in frame.iterrows()]
                    for k in KPIS}})
        else:
            now, before, year = queries.kpis_compared(con, flt, as_of)
            shown = pd.DataFrame([{"key": k.key, "kpi": k.label, "value": now[k.key], "previous": before[k.key],
                                   "year_before": year[k.key]} for k in KPIS])
            if args.format == "table":
                shown = pd.DataFrame([{"指标": k.label, "本期": format_value(k, now[k.key]),
                                       **dict(zip(("环比", "同比"), format_changes(k, now[k.key], before[k.key],
                                                                                  year[k.key]), strict=True))}
                                      for k in KPIS])
    finally:
        con.close()
    area = f"{scope.name} ({scope.code})" if scope else settings.county_name
    _emit(shown, args.format, args.out, lambda: print(
        f"{area} {start}—{end}, as of {as_of:%Y-%m-%d %H:%M}\n" + shown.to_string(index=False)))
    return 0


def cmd_backlog(args: argparse.Namespace) -> int:
    """积案: the cases open at the last build (or at the end of --as-of) by stage or by area, in age bands."""
    import datetime as dt

    import pandas as pd

    from onemap import queries
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        built = queries.reference_time(con)
        as_of = built if args.as_of is None else min(
            built, pd.Timestamp(args.as_of + dt.timedelta(days=1), tz=settings.timezone))
        scope = queries.area_scope(con, args.area) if args.area else None
        any_day = as_of.date()  # the backlog takes every registration day; the filter's period is not read
        flt = queries.EventFilter(any_day, any_day, categories=_categories(args),
                                  sources=tuple(args.source or ()), scope=scope)
        if args.by == "stage-time":
            frame = queries.stage_times(con, flt, as_of)
        else:
            frame = queries.backlog(con, flt, as_of, by=args.by, total=True)
    finally:
        con.close()
    area = f"{scope.name} ({scope.code})" if scope else settings.county_name
    if args.by == "stage-time":
        def times() -> None:
            print(f"{area} 各环节用时：截至 {as_of:%Y-%m-%d %H:%M} 的近 {queries.STAGE_TIME_DAYS} 天内结束的停留（天）")
            print(frame.drop(columns=["code"]).rename(columns={
                "name": "环节", "stays": "停留次数", "median_days": "中位数", "p90_days": "90%分位",
                "now": "当前在此环节"}).round(1).to_string(index=False))
            print("停留从该环节的第一条记录算到下一条不同状态的记录；载入流转记录时按每一步的时间，只有导出时按导出之间的间隔（粗略）")
        _emit(frame, args.format, args.out, times)
        return 0
    shown = frame.rename(columns={"open": "在办", **{key: label for key, label, _ in queries.AGE_BANDS},
                                  "overdue": "超期", "oldest_days": "最久(天)"})

    def table() -> None:
        print(f"{area} 积案（在办案件），截至 {as_of:%Y-%m-%d %H:%M}")
        print(shown.drop(columns=["code"]).rename(columns={"name": "阶段" if args.by == "stage" else "地区"})
              .to_string(index=False))
        if (frame["code"] == queries.UNRECORDED_STAGE).any():
            print(f"{queries.UNRECORDED_STAGE}：当时在办，但截至当时载入的导出中没有它在办的记录（多为此后才载入、载入时已办结）")

    _emit(frame, args.format, args.out, table)
    return 0


def cmd_loads(args: argparse.Namespace) -> int:
    from onemap import quarantine
    from onemap.warehouse import connect_readonly

    settings = _settings(args)
    con = connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
    try:
        frame = quarantine.loads(con)
    finally:
        con.close()
    _emit(frame, args.format, args.out, lambda: _print_loads(frame, settings))
    return 0


def _print_loads(frame, settings: Settings) -> None:
    from onemap.undo import undone

    shown = frame.drop(columns=["batch_id"]).astype({"taken_at": object})
    shown["taken_at"] = shown["taken_at"].where(frame["taken_at"].notna(), "")  # blank: taken when loaded
    print(shown.to_string(index=False) if len(frame) else "no loads yet")
    taken_back = undone(settings)
    if taken_back:
        print(f"\ntaken back by onemap undo ({len(taken_back)}; record in {settings.logs_dir}):")
        for u in taken_back[-10:]:
            files = ", ".join(f"{f['file']} ({f['inserted']:,} inserted, {f['updated']:,} updated)" for f in u["loads"])
            print(f"  {u['undone_at'][:16].replace('T', ' ')} by {u['by']}: the load of "
                  f"{u['loaded_at'][:16].replace('T', ' ')}: {files}")


def cmd_undo(args: argparse.Namespace) -> int:
    from onemap import undo

    settings = _settings(args)
    if not args.yes:
        point = undo.latest(settings)
        if point is None:
            print(f"no load to undo (undo points are kept for the last {settings.undo_keep} loads, "
                  "[ingest] undo_keep)")
            return 1
        print(("cannot undo " if point.blocked else "would undo ") + point.describe())
        print(point.blocked or "run `onemap undo --yes` to take it back")
        return 1 if point.blocked else 0
    point = undo.undo(settings)
    print("undone: " + point.describe())
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from models.backtest import DATASETS, run_backtest, warehouse_backtest

    if args.dataset == "warehouse":  # the deployment's own events
        from onemap.warehouse import connect_readonly

        settings = _settings(args)
        con = connect_readonly(settings.warehouse_path, settings.timezone)
        try:
            for res in args.resolution:
                results, text = warehouse_backtest(con, res, categories=_categories(args),
                                                   sources=tuple(args.source or ()),
                                                   max_origins=12 if args.max_origins is None else args.max_origins)
                print(text)
                if args.csv:
                    results.assign(dataset="warehouse", resolution=res).to_csv(
                        args.csv, mode="a", index=False, header=not Path(args.csv).exists())
        finally:
            con.close()
        return 0
    if args.data_dir:
        os.environ["ONEMAP_SHARED_DATA"] = args.data_dir
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    for name in names:
        for res in args.resolution:
            results, text = run_backtest(name, res, max_origins=args.max_origins)
            print(text)
            if args.csv:
                results.assign(dataset=name, resolution=res).to_csv(
                    args.csv, mode="a", index=False, header=not Path(args.csv).exists())
    return 0


def cmd_geodata_load(args: argparse.Namespace) -> int:
    from pipelines.areas_load import geodata_load_main

    settings = _settings(args)
    return geodata_load_main(settings, args.directory, args.vintage, declared_crs=args.crs, strict=args.strict,
                             history=args.history)


def cmd_geodata_list(args: argparse.Namespace) -> int:
    """The boundary vintages loaded, newest load first, and which is in use."""
    from pipelines.areas_load import vintages

    table = vintages(_settings(args))
    if table.empty:
        print("no boundary vintage loaded: the bundled demo county is in use until `onemap geodata load`")
        return 0
    shown = table[["vintage", "current", "loaded_at", "towns", "villages", "grids", "errors", "source_dir"]]
    _emit(shown, args.format, None, lambda: print(shown.assign(current=shown["current"].map({True: "in use",
                                                                                           False: ""}))
                                                   .to_string(index=False)))
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _serve(settings: Settings, host: str, port: int, kiosk: bool, area: str | None = None) -> int:
    from dashboard.app import create_app
    from onemap.access import load_users

    if not kiosk and host not in LOOPBACK and not load_users(settings.users_path):
        raise ValueError(f"serving on {host} (beyond this machine) needs user accounts, so that each user sees only "
                         f"their own area: add them with `onemap user add NAME --area CODE` ({settings.users_path})")
    from waitress import serve

    app = create_app(settings, kiosk=kiosk, kiosk_area=area)
    if host not in LOOPBACK and not settings.secure_cookies and not kiosk:
        print("WARNING: serving beyond this machine with [serve] secure_cookies = false: put an HTTPS reverse proxy "
              "in front and set secure_cookies = true, or passwords and sessions cross the network in clear",
              file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed in a URL
    print(f"serving 民情地图 at http://{shown}:{port}/ (Ctrl+C to stop)", flush=True)
    proxy = ({"trusted_proxy": settings.trusted_proxy, "trusted_proxy_headers": {"x-forwarded-for"},
              "clear_untrusted_proxy_headers": True} if settings.trusted_proxy else {})
    serve(app.server, host=host, port=port, threads=8, ident="onemap", **proxy)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.area and not args.kiosk:
        raise ValueError("--area sets the wall screen's area (with --kiosk); users see the area of their account")
    return _serve(settings, args.host or settings.host, args.port or settings.port, kiosk=args.kiosk, area=args.area)


def _output_args(p: argparse.ArgumentParser) -> None:
    """--format and --out, as :func:`_emit` reads them."""
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--out", help="write csv (with a BOM, for Excel) or json to this file instead of the screen")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onemap", description="民情地图 One Map: offline risk map for 综治中心.")
    parser.add_argument("--home", help="data directory (raw files, warehouse, logs); default ./data or ONEMAP_HOME")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate the demo county's exports, load them, build, and serve the map",
                       description="Generate two years of synthetic grid and police exports for 汕尾市城区, "
                                   "ingest them, build the warehouse and serve the map on 127.0.0.1.")
    p.add_argument("--out", help="folder for the generated exports (default <home>/demo_exports)")
    p.add_argument("--events", type=int, help="number of events (default from config: 200000)")
    p.add_argument("--seed", type=int, help="random seed (default from config)")
    p.add_argument("--end-date", help="last day of generated history, YYYY-MM-DD (default today)")
    p.add_argument("--no-serve", action="store_true", help="stop after building; do not start the server")
    p.add_argument("--host", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to serve on (default 8050)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="load export files of one source into the warehouse",
                       description="Validate, convert and upsert export files (CSV, XLSX, JSON lines). Rows that "
                                   "fail validation go to staging.rejects with file, row, field and reason.")
    p.add_argument("source", choices=["grid", "police", "hotline"], help="which source system the files come from")
    p.add_argument("files", nargs="+", help="export files")
    p.add_argument("--profile", help="column-mapping profile name or TOML path (default demo_<source>)")
    p.add_argument("--dry-run", action="store_true", help="validate and summarise without writing anything")
    p.add_argument("--force", action="store_true", help="reload a file that was loaded before")
    p.add_argument("--taken-at", metavar="TIME",
                   help="when the export was taken (YYYY-MM-DD HH:MM, local), for old exports loaded late: their "
                        "statuses are dated then in the status history and for 重开, not at the load time")
    p.add_argument("--sheet", help="the .xlsx sheet to read (default: the profile's, else the first)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("build", help="rebuild aggregates and scores from core.events and publish",
                       description="Rebuild hex and area aggregates from core.events, run contract checks and "
                                   "publish the warehouse atomically. Only days touched by loads since the "
                                   "last build are re-aggregated unless --full.")
    p.add_argument("--full", action="store_true", help="re-aggregate every day, not only the changed ones")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("alerts", help="list 'unusual now' alerts from the last build",
                       description="Cells and neighbourhoods whose counts in a 7-day or 1-day window are far above "
                                   "the expected counts (history, day of week, season, trend), after "
                                   "Benjamini-Hochberg false-discovery control, each with a Chinese sentence; "
                                   "and slow build-ups still running on the last day (kind ramp, NB CUSUM over "
                                   "the last four weeks, window = the rise so far).")
    p.add_argument("--since", type=_date, help="only windows ending on or after this date (YYYY-MM-DD)")
    p.add_argument("--window", type=int, choices=[1, 7],
                   help="only 1-day or 7-day windows (ramps, whose window is the rise so far, are then left out)")
    p.add_argument("--kind", choices=["cell", "neighbourhood", "category", "ramp"], help="only alerts of this kind")
    p.add_argument("--area", help="only alerts on the cells of this town or village (code)")
    p.add_argument("--summary", action="store_true",
                   help="per group: alerts, reviewed, 属实 / 误报 and the confirmed share (analysts' verdicts) with "
                        "its 95%% Wilson interval")
    p.add_argument("--by", choices=("kind", "month", "area"), default="kind",
                   help="--summary per alert kind (default), per month of the window's end, or per area one "
                        "level below --area (towns of the county, villages of a town)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("rejects", help="list the quarantined rows (file, row, field, reason), or give them back in "
                                       "their file's layout to correct and load again",
                       description="Rows that did not load, from staging.rejects: each with its file, row number, "
                                   "field, reason and detail. --summary counts them per file, reason and field; "
                                   "--raw gives the rows of one file as read (its own headers; party and dropped "
                                   "columns are not kept, free text is redacted), to correct in Excel and load "
                                   "again with onemap ingest.")
    p.add_argument("--file", help="only rows of this file (its name, as in onemap loads)")
    p.add_argument("--reason", help="only rows quarantined for this reason (e.g. unknown_category)")
    p.add_argument("--batch", help="only rows of this load (batch id)")
    p.add_argument("--summary", action="store_true", help="counts per file, reason and field (and how many of them "
                                                           "are outstanding)")
    p.add_argument("--outstanding", action="store_true", help="only the rows whose record no later load has put in "
                                                              "the warehouse (not yet corrected and loaded again)")
    p.add_argument("--raw", action="store_true", help="the rows in their file's layout (needs --file when the "
                                                       "selection spans files; csv or json)")
    p.add_argument("--limit", type=int, default=30, help="rows shown in the table (default 30)")
    _output_args(p)
    p.set_defaults(func=cmd_rejects)

    p = sub.add_parser("kpis", help="the KPIs of a period (default the last 28 days) with 环比 and 同比, for the "
                                    "county or one area, or per area one level down",
                       description="Every KPI of onemap/metrics.py (the map's and the brief's definitions) for the "
                                   "events registered in the period, as of the last build, with the change from "
                                   "the period of the same length before (环比) and from the same days 52 weeks "
                                   "earlier (同比); --by-area gives them per town (per village with a town's "
                                   "--area, per grid with a village's), a rate over fewer than 30 cases starred.")
    p.add_argument("--from", dest="since", type=_date, help="first day (default 27 days before --to)")
    p.add_argument("--to", type=_date, help="last day (default the last day with data)")
    p.add_argument("--area", help="a town or village (code); default the county")
    p.add_argument("--category", action="append", help="only this category or prefix (repeatable), e.g. MD10")
    p.add_argument("--source", action="append", choices=["grid", "police", "hotline"],
                   help="only this source (repeatable); 环比 / 同比 are blank where a source's data begins after the "
                        "earlier period starts")
    p.add_argument("--by-area", action="store_true", help="one row per area one level below --area")
    _output_args(p)
    p.set_defaults(func=cmd_kpis)

    p = sub.add_parser("backlog", help="积案: the cases open now (or at the end of a day) by stage of the flow or "
                                       "by area, with how long they have been open",
                       description="The cases open at the last build (--as-of: at the end of that day), whatever "
                                   "their registration day: per stage of the flow (登记受理 … 跟踪督办, as the "
                                   "exports loaded by then showed each case) or, --by area, per area one level below "
                                   "--area; each with the cases open 7 days or less, 8–30, 31–90 and over 90 days, "
                                   "those past their due time (超期) and the longest open. The same open and "
                                   "overdue definitions as the map, the brief and onemap kpis.")
    p.add_argument("--by", choices=["stage", "area", "stage-time"], default="stage",
                   help="rows per stage (default) or per area; stage-time: how long cases stay in each stage (the "
                        "stays that ended in the last 90 days: median and 90th percentile, in days)")
    p.add_argument("--as-of", type=_date, help="the backlog at the end of this day (default: the last build)")
    p.add_argument("--area", help="a town or village (code); default the county")
    p.add_argument("--category", action="append", help="only this category or prefix (repeatable), e.g. MD10")
    p.add_argument("--source", action="append", choices=["grid", "police", "hotline"],
                   help="only this source (repeatable)")
    _output_args(p)
    p.set_defaults(func=cmd_backlog)

    p = sub.add_parser("loads", help="list the loads: file, profile and read / inserted / updated / unchanged / "
                                     "linked / quarantined, and whether they reconcile")
    _output_args(p)
    p.set_defaults(func=cmd_loads)

    p = sub.add_parser("undo", help="take back the latest load: the warehouse as it was before it (shows what it "
                                    "would take back; --yes does it)",
                       description="Put back the warehouse as it was before the latest `onemap ingest` (events, "
                                   "status history, links, quarantine, aggregates and scores), then the one before "
                                   "it, as far as [ingest] undo_keep reaches (default the last 3 loads). Builds and "
                                   "boundary loads made since are taken back too; it says so first. The raw copies "
                                   "stay: the file can be loaded again. Each undo is recorded (onemap loads shows it).")
    p.add_argument("--yes", action="store_true", help="do it (without it, only say what would be taken back)")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("backtest", help="rolling-origin backtest of the next-period forecast (PAI, PEI, ceiling)",
                       description="Rolling-origin backtest of the cell risk forecaster beside the baselines "
                                   "(last 4 weeks, all history, KDE) and the ceiling (the best possible cells), "
                                   "printing PAI, PEI and hit rate at 1% and 5% of the study area, on the real "
                                   "public datasets in ../shared/data.")
    p.add_argument("--dataset", default="portland-cfs",
                   choices=["portland-cfs", "portland-disorder", "portland-burglary-mvt", "portland-burglary",
                            "milwaukee-cfs", "all", "warehouse"],
                   help="a public dataset, all of them, or 'warehouse': this deployment's own events (the last "
                        "12 weeks scored unless --max-origins; --category / --source narrow them)")
    p.add_argument("--category", action="append", help="with --dataset warehouse: only this category or prefix")
    p.add_argument("--source", action="append", choices=["grid", "police", "hotline"],
                   help="with --dataset warehouse: only this source")
    p.add_argument("--resolution", type=int, nargs="+", default=[9], help="H3 resolution(s), e.g. 9 10")
    p.add_argument("--max-origins", type=_positive, help="score only the last N origins (faster)")
    p.add_argument("--data-dir", help="folder with the public datasets (default ../shared/data)")
    p.add_argument("--csv", help="append per-origin results to this CSV file")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("geodata", help="manage the deployment's own boundaries (county, towns, villages, grids)")
    geo = p.add_subparsers(dest="geodata_command", required=True)
    p = geo.add_parser("load", help="load, check and store one vintage of boundary files",
                       description="Read county/towns/villages/grids from GeoJSON, Shapefile or GeoPackage in any "
                                   "CRS, check them (invalid rings, overlaps and gaps between siblings, codes "
                                   "against parents) and store them under a vintage; earlier vintages are kept.")
    p.add_argument("directory", help="folder with county/towns/villages/grids files (or one GeoPackage)")
    p.add_argument("--vintage", help="boundary vintage label, e.g. 2024 (or from areas.toml)")
    p.add_argument("--crs", help="declare the files' CRS when missing or wrong: gcj02, bd09, EPSG:4549 ...")
    p.add_argument("--strict", action="store_true", help="refuse to load when the checks find errors")
    p.add_argument("--history", action="store_true", help="store this vintage for the record only: the boundaries "
                                                          "in use stay the current ones (an older vintage loaded "
                                                          "after a newer one)")
    p.set_defaults(func=cmd_geodata_load)
    p = geo.add_parser("list", help="the boundary vintages loaded, and which is in use")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_geodata_list)

    p = sub.add_parser("report", help="write the weekly 研判 brief (.docx and .pdf) for the leadership meeting",
                       description="Write the weekly 研判 brief of one Monday-Sunday week as a Word document and a "
                                   "PDF: KPIs with 环比 and 同比, categories, towns, the week's alerts with their "
                                   "reasons, emerging hot spots, a map, overdue cases for 督办 and repeat places "
                                   "for 回访. Each figure is measured as of the end of its week, so the brief of a "
                                   "past week reads the same whenever it is made.")
    p.add_argument("--week", type=_date, help="any day of the week (YYYY-MM-DD); default: the last complete week")
    p.add_argument("--out", help="output folder (default <home>/reports)")
    p.add_argument("--format", type=_formats, default=("docx", "pdf"), help="docx, pdf or both (default docx,pdf)")
    p.add_argument("--area", help="a town or village code: that area's brief (default the whole county)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="serve the map (Dash) on 127.0.0.1",
                       description="Serve the 民情地图 dashboard from the published warehouse.")
    p.add_argument("--host", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8050)")
    p.add_argument("--kiosk", action="store_true", help="wall-screen mode: dark, no controls, auto-refresh, public "
                                                        "(no sign-in; hexes with fewer than 3 events left out)")
    p.add_argument("--area", help="with --kiosk: the town or village code the wall screen shows (default the county)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("user", help="manage the map's user accounts (area and role of each)",
                       description="Accounts of the map, kept in the users file ([access] users_file, default "
                                   "<home>/secrets/users.toml). Each user sees only the events, alerts, hot spots, "
                                   "places and briefs of their area, enforced on the server. Once the file exists, "
                                   "the map asks everyone to sign in.")
    users = p.add_subparsers(dest="user_command", required=True)
    p = users.add_parser("add", help="add (or with --force replace) an account")
    p.add_argument("name", help="sign-in name: ASCII letters, digits, _ . -")
    p.add_argument("--area", required=True, help="county, town or village code the user sees, e.g. 441502001")
    p.add_argument("--role", choices=["viewer", "handler"], default="viewer",
                   help="viewer: sensitive events (domestic violence, minors) only as counts of 3 or more; "
                        "handler: the staff who work the cases, who see them listed (default viewer)")
    p.add_argument("--display", help="a name shown in the map's header, e.g. 新港街道综治中心")
    p.add_argument("--password-env", help="read the password from this environment variable (default: prompt)")
    p.add_argument("--force", action="store_true", help="replace an existing account of that name")
    p.set_defaults(func=cmd_user)
    p = users.add_parser("list", help="list the accounts")
    p.set_defaults(func=cmd_user)
    p = users.add_parser("remove", help="remove an account")
    p.add_argument("name")
    p.set_defaults(func=cmd_user)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into head/less that stopped reading
        sys.stderr.close()
        return 0
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"onemap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
