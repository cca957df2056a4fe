"""The `alertd` command line: migrate, run, sandbox, staff-token, shelters, tips, jobs,
localdb."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from alertd import errors, settings

_CONFIG_HELP = "extra configuration file (may be repeated; later files win)"


def _settings_options() -> argparse.ArgumentParser:
    """`--config` for the commands that read settings, accepted after the command name too."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", action="append", default=[], dest="config_after",
                   metavar="FILE", help=_CONFIG_HELP)
    return p


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alertd",
                                description="Evacuation alerts to residents' phones.")
    # Files given before the command come first, then those after it, each in order.
    p.add_argument("--config", action="append", default=[], dest="config_before",
                   metavar="FILE", help=_CONFIG_HELP)
    common = [_settings_options()]
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", parents=common, help="apply database migrations")
    run = sub.add_parser("run", parents=common, help="run the daemon")
    run.add_argument("--role", default="api,worker,feeds,scheduler",
                     help="comma list of roles: api, worker, feeds, scheduler "
                          "(default all four: one process does everything)")
    run.add_argument("--migrate", action="store_true", help="apply migrations before starting")
    run.add_argument("--workers", type=_workers, default=None, metavar="N",
                     help="dispatcher processes for the worker role, supervised by this one "
                          "(restarted when one dies, stopped with it); 0 or 1: the dispatcher "
                          "runs in this process (default: one per CPU core)")
    # Set by the supervisor on the worker processes it starts (see alertd.supervisor).
    run.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    sub.add_parser("sandbox", help="run the local fake APNs and FCM (--port-base N --dir D)")
    tok = sub.add_parser("staff-token", help="manage staff tokens")
    tok_sub = tok.add_subparsers(dest="action", required=True)
    create = tok_sub.add_parser("create", parents=common,
                                help="create a token (printed alone on the last line)")
    create.add_argument("--role", required=True, choices=("viewer", "operator", "admin"))
    create.add_argument("--label", default="")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", metavar="LIFETIME",
                        help="the token stops working after this long: 90m, 12h, 30d, 2w")
    expiry.add_argument("--expires-at", metavar="TIME",
                        help="the token stops working at this ISO 8601 time with its offset, "
                             "e.g. 2026-03-31T17:00:00+09:00")
    listing = tok_sub.add_parser("list", parents=common,
                                 help="list tokens: id, role, label, created, expires, last used,"
                                      " revoked (never the secret)")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    revoke = tok_sub.add_parser("revoke", parents=common,
                                help="revoke a token by its id (it is refused from then on)")
    revoke.add_argument("id", help="the token's id, as `staff-token list` shows it")
    sh = sub.add_parser("shelters", help="shelter data")
    sh_sub = sh.add_subparsers(dest="action", required=True)
    imp = sh_sub.add_parser("import", parents=common,
                            help="import a designated shelter/evacuation-site CSV")
    imp.add_argument("file")
    tips = sub.add_parser("tips", help="the weekly tips catalogue")
    tips_sub = tips.add_subparsers(dest="action", required=True)
    check = tips_sub.add_parser("check", parents=common,
                                help="validate the catalogue: exit 0, or 1 naming each problem")
    check.add_argument("--dir", help="a catalogue directory (default: tips.catalogue_dir, "
                                     "else the shipped one)")
    jobs = sub.add_parser("jobs", help="the scheduled jobs")
    jobs_sub = jobs.add_subparsers(dest="action", required=True)
    jobs_sub.add_parser("list", parents=common,
                        help="name every scheduled job with its schedule and what it does")
    run_job = jobs_sub.add_parser("run", parents=common,
                                  help="run one job now, as the scheduler would (waits while "
                                       "it runs elsewhere)")
    run_job.add_argument("name", help="the job's name, as `jobs list` shows it")
    ldb = sub.add_parser("localdb", parents=common,
                         help="find or start a local PostgreSQL and print its URL")
    ldb.add_argument("--dir", default=".local/pg", help="where a private cluster lives")
    return p


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return n


def config_files(args: argparse.Namespace) -> list[str]:
    """The --config files of a parsed command line, in the order given."""
    return [*args.config_before, *getattr(args, "config_after", [])]


async def _apply_migrations(cfg: settings.Settings) -> list[str]:
    from alertd import db

    conn = await db.connect_one(cfg.database.url)
    try:
        return await db.migrate(conn)
    finally:
        await conn.close()


async def _migrate(cfg: settings.Settings) -> int:
    applied = await _apply_migrations(cfg)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


async def _staff_token(cfg: settings.Settings, args: argparse.Namespace) -> int:
    from alertd import audit, db, staff

    now = datetime.now(UTC)
    expires_in = staff.parse_duration(args.expires_in) if args.expires_in else None
    expires_at = staff.parse_instant(args.expires_at, now) if args.expires_at else None
    conn = await db.connect_one(cfg.database.url)
    try:
        async with conn.transaction():  # the token and its audit entry together
            token = await staff.create(conn, args.role, args.label, expires_at=expires_at,
                                       expires_in=expires_in)
            made = await staff.info(conn, token)
            await audit.record(conn, None, audit.CLI, "token.create", target=str(made.id),
                               status=0, after=made.as_json(now))
    finally:
        await conn.close()
    print(f"created a staff token with the {args.role} role; it is shown only once:")
    print(token)
    return 0


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t is not None else "-"


async def _staff_tokens(cfg: settings.Settings, as_json: bool) -> int:
    from alertd import db, staff

    conn = await db.connect_one(cfg.database.url)
    try:
        found = await staff.tokens(conn)
    finally:
        await conn.close()
    now = datetime.now(UTC)
    if as_json:
        print(json.dumps([t.as_json(now) for t in found], ensure_ascii=False, indent=2))
        return 0
    rows = [("id", "role", "label", "created", "expires", "last used", "revoked", "state")]
    rows += [(str(t.id), t.role, t.label or "-", _when(t.created_at), _when(t.expires_at),
              _when(t.last_used_at), _when(t.revoked_at), t.state(now)) for t in found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


async def _revoke_staff_token(cfg: settings.Settings, token_id: str) -> int:
    from alertd import audit, db, staff

    conn = await db.connect_one(cfg.database.url)
    try:
        async with conn.transaction():
            info, now_revoked = await staff.revoke(conn, token_id)
            if now_revoked:
                await audit.record(conn, None, audit.CLI, "token.revoke", target=str(info.id),
                                   status=0, after=info.as_json(datetime.now(UTC)))
    finally:
        await conn.close()
    what = f"{info.role} staff token {info.id}" + (f" ({info.label})" if info.label else "")
    if now_revoked:
        print(f"revoked the {what}")
    else:
        print(f"the {what} was already revoked at {_when(info.revoked_at)}")
    return 0


async def _import_shelters(cfg: settings.Settings, path: str) -> int:
    from pathlib import Path

    from alertd import db, shelters
    from feeds import errors as feed_errors
    from feeds import shelters as shelter_csv

    try:
        data = await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        print(f"alertd: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        parsed = shelter_csv.parse(data)
    except feed_errors.FeedError as exc:
        print(f"alertd: {path}: {exc.reason}", file=sys.stderr)
        return 1
    for err in parsed.errors:
        print(f"{path}:{err.line}: {err.reason}", file=sys.stderr)
    conn = await db.connect_one(cfg.database.url)
    try:
        inserted, updated = await shelters.upsert(conn, parsed.shelters)
    finally:
        await conn.close()
    print(f"{parsed.format}: {inserted} shelters added, {updated} updated, "
          f"{len(parsed.errors)} rows refused")
    return 0 if parsed.shelters or not parsed.errors else 1


def _check_tips(cfg: settings.Settings, directory: str | None) -> int:
    from pathlib import Path

    from alertd import tip_catalogue

    chosen = directory or cfg.tips.catalogue_dir
    try:
        files = tip_catalogue.read_dir(Path(chosen) if chosen else None)
    except errors.ConfigError as exc:
        print(f"alertd: {exc.reason}", file=sys.stderr)
        return 1
    catalogue, problems = tip_catalogue.check(files)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"alertd: the tips catalogue has {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"tips catalogue ok: {len(catalogue.tips)} tips")
    return 0


def _list_jobs(cfg: settings.Settings) -> int:
    from alertd import app, scheduler

    for line in scheduler.describe(app.scheduled_jobs(cfg)):
        print(line)
    return 0


async def _run_job(cfg: settings.Settings, name: str) -> int:
    from alertd import app, db, scheduler

    jobs = {j.name: j for j in app.scheduled_jobs(cfg)}
    if name not in jobs:
        print(f"alertd: no job named {name!r}; the jobs are: {', '.join(jobs)}", file=sys.stderr)
        return 1
    pool = await db.connect(cfg.database.url, min_size=1, max_size=4)
    try:
        ran = await scheduler.run(pool, cfg, jobs[name], node=f"cli:{scheduler.node_name()}",
                                  force=True)
    finally:
        await pool.close()
    assert ran is not None  # forced: it always runs
    done = ", ".join(f"{k} {v}" for k, v in ran.counts.items()) or "nothing to report"
    print(f"{name}: ran in {ran.seconds:.2f} s: {done}")
    return 0


async def _run(cfg: settings.Settings, args: argparse.Namespace) -> int:
    from alertd import app, supervisor

    parsed = app.parse_roles(args.role)
    procs = app.Processes(workers=supervisor.worker_count(args.workers),
                          config_files=tuple(config_files(args)),
                          worker_index=args.worker_index)
    migrate_first = args.migrate
    if migrate_first:  # a log line like the daemon's others (JSON in a container), no print
        import structlog

        applied = await _apply_migrations(cfg)
        structlog.get_logger(__name__).info("migrations_applied", versions=applied)
    await app.serve(cfg, parsed, procs)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alertd` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        from alertd.sandbox import server

        return server.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        cfg = settings.load(config_files(args))
    except errors.ConfigError as exc:
        print(f"alertd: configuration error: {exc}", file=sys.stderr)
        return 2
    from alertd import logs

    logs.configure(cfg.log.format, cfg.log.level)
    try:
        if args.command == "migrate":
            return asyncio.run(_migrate(cfg))
        if args.command == "run":
            return asyncio.run(_run(cfg, args))
        if args.command == "staff-token" and args.action == "create":
            return asyncio.run(_staff_token(cfg, args))
        if args.command == "staff-token" and args.action == "list":
            return asyncio.run(_staff_tokens(cfg, args.json))
        if args.command == "staff-token" and args.action == "revoke":
            return asyncio.run(_revoke_staff_token(cfg, args.id))
        if args.command == "shelters":
            return asyncio.run(_import_shelters(cfg, args.file))
        if args.command == "tips":
            return _check_tips(cfg, args.dir)
        if args.command == "jobs" and args.action == "list":
            return _list_jobs(cfg)
        if args.command == "jobs" and args.action == "run":
            return asyncio.run(_run_job(cfg, args.name))
        if args.command == "localdb":
            from alertd import localdb

            print(asyncio.run(localdb.ensure(cfg.database.url, args.dir)))
            return 0
    except errors.ConfigError as exc:  # found at start (push credentials): as at load
        print(f"alertd: configuration error: {exc.reason}", file=sys.stderr)
        return 2
    except errors.AlertdError as exc:
        print(f"alertd: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
