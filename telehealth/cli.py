"""The `telehealth` command: serve, migrate, create-user, check, audit verify."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from telehealth import __version__, logs
from telehealth.config import ConfigError, Settings, finalize_secrets, load_settings
from telehealth.domain import SPECIALTIES, Role, Title

log = logging.getLogger("telehealth")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="an extra TOML file read after config/default.toml")
    parser.add_argument("--profile", metavar="NAME", help="a profile in config/ (e.g. test) read after the default")
    parser.add_argument("--database-url", metavar="URL",
                        help="records database (default: SQLite file in the data dir), "
                             "e.g. postgresql+asyncpg://user@host/db")
    parser.add_argument("--redis-url", metavar="URL",
                        help="Redis for queue, presence and pub/sub between nodes (default: in-process broker)")
    parser.add_argument("--data-dir", metavar="DIR", help="where the SQLite file and uploads live (default: ./data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telehealth",
        description="Remote consultation server: clinics ask, specialists answer over video, "
                    "and the referral record keeps what was advised.")
    parser.add_argument("--version", action="version", version=f"telehealth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the server",
                           description="Run the server. With no options: SQLite file under the data dir and "
                                       "the in-process broker, listening on 127.0.0.1:8080.")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--demo", action="store_true",
                       help="seed a demo medical alliance with accounts (once) and print the logins")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate chain")
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert")
    serve.add_argument("--node-name", help="this node's name in logs (default host:port)")

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema",
                             description="Apply the schema migrations to the configured database.")
    _common(migrate)

    create = sub.add_parser("create-user", help="add an account",
                            description="Add an account. The password is asked for, or read from "
                                        "TELEHEALTH_NEW_PASSWORD.")
    _common(create)
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--organisation", help="organisation name (required except for system administrators)")
    create.add_argument("--title", choices=[t.value for t in Title])
    create.add_argument("--specialty", action="append", default=[], choices=list(SPECIALTIES),
                        help="a specialty (repeat for several)")
    create.add_argument("--language", default="", choices=["", "zh_CN", "en"],
                        help="the interface language (default: follow the browser)")
    create.add_argument("--system-admin", action="store_true", help="an administrator who sees every alliance")

    reset = sub.add_parser("reset-second-factor", help="remove an account's second factor (a lost phone)",
                           description="Remove the account's authenticator app and recovery codes, as an "
                                       "administrator can on the account's page; for when the one who would "
                                       "do it is the one locked out. Audited. If the account's role requires a "
                                       "second factor, it sets one up again at its next sign-in.")
    _common(reset)
    reset.add_argument("username")

    check = sub.add_parser("check", help="validate the configuration and reach the database and Redis",
                           description="Load and validate the settings, connect to the database (and Redis when "
                                       "configured), and print what was found. Exit status 1 on any problem.")
    _common(check)

    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the audit log's keyed hash chain against its anchor",
        description="Recompute the keyed hash chain of the audit log with the audit key (TELEHEALTH_AUDIT_KEY or "
                    "TELEHEALTH_AUDIT_KEY_FILE) and compare its length and head with the anchor file. Reports an "
                    "edited entry, removed entries at the end, and a wrong key. Exit status 1 on any problem.")
    _common(verify)
    verify.add_argument("--anchor", metavar="FILE",
                        help="the anchor file to compare with (default: audit.anchor_path, or audit-anchor.jsonl "
                             "in the data dir), e.g. the copy kept elsewhere")
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {"database_url": args.database_url, "redis_url": args.redis_url, "data_dir": args.data_dir, **extra}
    return load_settings(profile=args.profile, overrides=overrides, config_file=args.config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure("text", os.environ.get("TELEHEALTH_LOG_LEVEL", "INFO"))
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "migrate":
            return asyncio.run(_migrate(_settings(args)))
        if args.command == "create-user":
            return asyncio.run(_create_user(args, _settings(args)))
        if args.command == "reset-second-factor":
            return asyncio.run(_reset_second_factor(args.username, _settings(args)))
        if args.command == "check":
            return asyncio.run(_check(_settings(args)))
        if args.command == "audit":
            return asyncio.run(_audit_verify(_settings(args), args.anchor))
    except ConfigError as exc:
        print(f"telehealth: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from telehealth.records.seed import DEMO_PASSWORD, demo_logins
    from telehealth.server.app import create_app, node_name

    settings = _settings(args, host=args.host, port=args.port, demo=True if args.demo else None,
                         node_name=args.node_name)
    settings, notes = finalize_secrets(settings)
    logs.configure(settings.log_format, os.environ.get("TELEHEALTH_LOG_LEVEL", "INFO"))
    logs.bind(node=node_name(settings))
    for note in notes:
        log.warning("%s", note)
    ssl_context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    app = create_app(settings)
    scheme = "https" if ssl_context else "http"
    shown_host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host

    async def announce(_app: web.Application) -> None:
        lines = [f"telehealth {__version__} listening on {scheme}://{shown_host}:{settings.port}/",
                 f"records: {'SQLite file in ' + settings.data_dir if settings.uses_embedded_database and not settings.database_url else 'configured database'}; "
                 f"broker: {'Redis' if settings.redis_url else 'in-process'}"]
        if settings.demo:
            lines.append(f"demo logins (password for all: {DEMO_PASSWORD}):")
            lines.extend(f"  {user:<18} {what}" for user, what in demo_logins())
            if settings.security.second_factor_roles:
                lines.append(f"  accounts of the roles {', '.join(settings.security.second_factor_roles)} set up an "
                             "authenticator app (second factor) at their first sign-in")
        print("\n".join(lines), flush=True)

    app.on_startup.append(announce)

    async def settle_heap(_app: web.Application) -> None:
        # Everything loaded at start (code, the ICD-10 tables, templates) lives as long as the process:
        # move it out of the collector's way, so full collections stay short under load.
        gc.collect()
        gc.freeze()

    app.on_startup.append(settle_heap)
    web.run_app(app, host=settings.host, port=settings.port, ssl_context=ssl_context, print=None,
                shutdown_timeout=10, access_log=None)
    return 0


async def _migrate(settings: Settings) -> int:
    from telehealth.records.db import create_engine, migrate, schema_status

    engine = create_engine(settings.effective_database_url)
    try:
        before, _ = await schema_status(engine)
        await migrate(engine)
        after, _ = await schema_status(engine)
    finally:
        await engine.dispose()
    print(f"schema: {before or 'empty'} -> {after}")
    return 0


async def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from telehealth.accounts import MIN_PASSWORD_LENGTH
    from telehealth.errors import TelehealthError
    from telehealth.matching.memory import MemoryBroker
    from telehealth.matching.service import Matcher
    from telehealth.records.db import create_engine, migrate
    from telehealth.records.store import open_store
    from telehealth.schema import InputError, parse
    from telehealth.services.accounts import NewUserInput
    from telehealth.services.context import Services

    role = Role(args.role)
    if role is Role.specialist and (not args.specialty or not args.title):
        print("telehealth: a specialist needs --title and at least one --specialty", file=sys.stderr)
        return 2
    if not args.organisation and not (role is Role.admin and args.system_admin):
        print("telehealth: --organisation is required (except for --system-admin administrators)", file=sys.stderr)
        return 2
    password = os.environ.get("TELEHEALTH_NEW_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"telehealth: the password must have at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return 2
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine) if settings.uses_embedded_database else None
        store = open_store(engine, settings)
        broker = MemoryBroker()
        services = Services(store, broker, Matcher(store, broker, settings.matching), settings)
        org_id = None
        if args.organisation:
            org = await store.get_organisation_by_name(args.organisation)
            if org is None:
                names = ", ".join(o.name for o in await store.list_organisations()) or "none yet"
                print(f"telehealth: no organisation named {args.organisation!r} (known: {names})", file=sys.stderr)
                return 2
            org_id = org.id
        try:
            body = parse(NewUserInput, {
                "username": args.username, "role": role.value, "display_name": args.name, "password": password,
                "organisation_id": org_id, "title": args.title or None, "specialties": list(args.specialty or []),
                "language": args.language or "", "is_system_admin": bool(args.system_admin)})
            # The operator at the command line acts for the system: no administrator's alliance applies,
            # but the role's institution rule does.
            user = await services.accounts.create_user(None, body)
        except TelehealthError as exc:
            field = exc.field if isinstance(exc, InputError) and "{field}" not in exc.template else ""
            print(f"telehealth: {field}: {exc.message}" if field else f"telehealth: {exc.message}",
                  file=sys.stderr)
            return 1
    finally:
        await engine.dispose()
    print(f"created {user.role.value} {user.username} (id {user.id})")
    return 0


async def _reset_second_factor(username: str, settings: Settings) -> int:
    from telehealth.matching.memory import MemoryBroker
    from telehealth.matching.service import Matcher
    from telehealth.records.db import create_engine
    from telehealth.records.store import open_store
    from telehealth.services import Services

    engine = create_engine(settings.effective_database_url)
    try:
        store = open_store(engine, settings)
        user = await store.get_user_by_username(username)
        if user is None:
            print(f"telehealth: no account named {username!r}", file=sys.stderr)
            return 2
        broker = MemoryBroker()
        services = Services(store, broker, Matcher(store, broker, settings.matching), settings)
        removed = await services.second_factors.reset(None, user.id)
    finally:
        await engine.dispose()
    print(f"second factor of {username} removed" if removed else f"{username} had no second factor")
    return 0


async def _check(settings: Settings) -> int:
    from telehealth.records.db import create_engine, schema_status

    ok = True
    print(f"configuration: ok (mode {settings.mode})")
    try:
        _, notes = finalize_secrets(settings)
        for note in notes:
            print(f"  note: {note}")
    except ConfigError as exc:
        print(f"secrets: MISSING: {exc}")
        ok = False
    url = settings.effective_database_url
    shown = url.split("@")[-1] if "@" in url else url
    engine = create_engine(url)
    try:
        current, head = await asyncio.wait_for(schema_status(engine), 10)
        state = "up to date" if current == head else f"at {current or 'nothing'}, needs {head}: run telehealth migrate"
        print(f"database: reachable ({shown}); schema {state}")
        if current != head and not settings.uses_embedded_database:
            ok = False
    except Exception as exc:
        print(f"database: UNREACHABLE ({shown}): {type(exc).__name__}: {exc}")
        ok = False
    finally:
        await engine.dispose()
    if settings.redis_url:
        from telehealth.matching.redis_broker import redis_client

        client = redis_client(settings.redis_url)
        try:
            info = await asyncio.wait_for(client.info("server"), 5)
            print(f"redis: reachable ({settings.redis_url.split('@')[-1]}), version {info.get('redis_version')}")
        except Exception as exc:
            print(f"redis: UNREACHABLE ({settings.redis_url.split('@')[-1]}): {type(exc).__name__}")
            ok = False
        finally:
            await client.aclose()
    else:
        print("broker: in-process (single node)")
    if settings.audit_key:
        key_from = "keyed with TELEHEALTH_AUDIT_KEY"
    elif settings.mode == "production":
        key_from = "audit key MISSING"
    else:
        key_from = "keyed with audit.key in the data directory (development only)"
    print(f"audit: {key_from}; anchor {settings.audit_anchor_path.resolve()}")
    ice = settings.ice
    print(f"ice: {len(ice.stun_urls)} STUN URL(s), {len(ice.turn_urls)} TURN URL(s)"
          + ("; TURN secret set" if ice.secret else ""))
    print("ok" if ok else "problems found")
    return 0 if ok else 1


async def _audit_verify(settings: Settings, anchor_file: str | None) -> int:
    from pathlib import Path

    from telehealth.config import audit_key_of
    from telehealth.records.anchor import AuditAnchor, verify_audit
    from telehealth.records.db import create_engine
    from telehealth.records.store import audit_anchor, open_store

    settings, _ = finalize_secrets(settings)
    engine = create_engine(settings.effective_database_url)
    try:
        store = open_store(engine, settings)
        anchor = audit_anchor(settings)
        if anchor_file:
            anchor = AuditAnchor(Path(anchor_file), audit_key_of(settings))
        verdict = await verify_audit(store, anchor)
    finally:
        await engine.dispose()
    for note in verdict.notes:
        print(f"  note: {note}")
    if verdict.ok:
        point = verdict.anchor.last
        print(f"audit chain intact: {verdict.check.checked} entries"
              + (f", matching the anchor at entry {point.seq}" if point else ""))
        return 0
    print(f"audit chain BROKEN ({verdict.check.checked} good entries from the start):")
    for problem in verdict.problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
