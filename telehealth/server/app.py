"""The application factory: the CLI and the tests build the server the same way."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from telehealth.config import Settings
from telehealth.domain import EndReason
from telehealth.errors import TelehealthError
from telehealth.matching.broker import Broker
from telehealth.matching.service import Matcher
from telehealth.records.db import create_engine, migrate, schema_status
from telehealth.records.seed import seed_demo, seed_demo_slots
from telehealth.records.store import open_store
from telehealth.server import (
    account_pages,
    admin_pages,
    agreements_api,
    api,
    appointment_pages,
    appointments_api,
    attachments_api,
    audit_pages,
    bed_pages,
    consult_pages,
    health,
    keys,
    metrics,
    notes_api,
    openapi,
    pages,
    people_pages,
    precheck_api,
    record_pages,
    referrals_api,
    results_api,
    second_factor_pages,
    slot_pages,
    stats_pages,
    ws,
)
from telehealth.server.i18n import Renderer, i18n_ctx, web_dir
from telehealth.server.middlewares import edge_middleware, security_headers
from telehealth.server.redis_login_limits import RedisLoginLimiter
from telehealth.services import Services
from telehealth.signaling.hub import Hub
from telehealth.signaling.sessions import SessionManager

log = logging.getLogger("telehealth.server")


def node_name(settings: Settings) -> str:
    return settings.node_name or f"{socket.gethostname()}:{settings.port}"


def make_broker(settings: Settings, node: str) -> Broker:
    if settings.redis_url:
        from telehealth.matching.redis_broker import RedisBroker

        return RedisBroker(settings.redis_url, prefix=settings.redis_prefix, node=node)
    from telehealth.matching.memory import MemoryBroker

    return MemoryBroker(node=node)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = create_engine(settings.effective_database_url)
    store = open_store(engine, settings)
    try:
        if settings.uses_embedded_database:
            # The embedded default sets itself up on first start; PostgreSQL is migrated explicitly.
            await migrate(engine)
        else:
            current, head = await schema_status(engine)
            if current != head:
                raise RuntimeError(f"the database schema is at {current or 'nothing'}, this code needs {head}: "
                                   "run `telehealth migrate` first")
        if settings.demo:
            if await seed_demo(store, dt.datetime.now(dt.UTC)):
                app[keys.STARTUP_NOTES].append("seeded the demo medical alliances")
            if await seed_demo_slots(store, dt.datetime.now(dt.UTC), settings.slots.tz,
                                     policy=settings.slots.share_policy):
                app[keys.STARTUP_NOTES].append("published the demo hospitals' outpatient slots for the coming week")
        app[keys.STORE] = store
        yield
    finally:
        store.close_readers()
        await engine.dispose()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker = make_broker(app[keys.SETTINGS], app[keys.NODE])
    await broker.start()
    app[keys.BROKER] = broker
    try:
        yield
    finally:
        await broker.close()


async def _signaling_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    store, broker = app[keys.STORE], app[keys.BROKER]
    matcher = Matcher(store, broker, settings.matching)
    matcher.tz = settings.slots.tz
    matcher.offer_latency_observer = app[keys.METRICS].offer_latency.observe
    matcher.claim_latency_observer = app[keys.METRICS].claim_latency.observe
    login_limits = _shared_login_limits(settings)
    app[keys.SERVICES] = Services(store, broker, matcher, settings, node=app[keys.NODE], login_limits=login_limits)
    hub = Hub(broker)
    await hub.start()
    sessions = SessionManager(store, broker, hub, matcher, settings, app[keys.NODE])
    updates = ws.QueueUpdates(app)
    hub.queue_hooks.append(updates.on_queue_changed)
    app[keys.MATCHER], app[keys.HUB], app[keys.SESSIONS], app[keys.QUEUE_UPDATES] = matcher, hub, sessions, updates
    stop = asyncio.Event()
    tasks = [asyncio.create_task(matcher.run_background(stop), name="matching-sweeper"),
             asyncio.create_task(sessions.run_background(stop, lambda: matcher.rebuilt_at), name="session-keeper"),
             asyncio.create_task(_release_slots(app[keys.SERVICES], stop), name="slot-release"),
             asyncio.create_task(_keep_appointments(app[keys.SERVICES], stop), name="appointment-keeper")]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await updates.close()
        await sessions.flush_log()
        if not settings.redis_url:
            # A lone node takes every session down with it: close them consistently.
            try:
                await sessions.end_all_local(EndReason.server_shutdown)
            except Exception:
                log.warning("could not close open sessions at shutdown", exc_info=True)
        await hub.close()
        if login_limits is not None:
            await login_limits.close()


def _shared_login_limits(settings: Settings) -> RedisLoginLimiter | None:
    """With Redis configured every node counts failed sign-ins together; a lone node counts in its memory."""
    if not settings.redis_url:
        return None
    from telehealth.matching.redis_broker import redis_client

    redis = redis_client(settings.redis_url, socket_timeout=5, socket_connect_timeout=5, retry_on_timeout=True)
    return RedisLoginLimiter(redis, settings.security, prefix=settings.redis_prefix)


async def _release_slots(services: Services, stop: asyncio.Event) -> None:
    """Hand reserved slots and beds past their cut-off back to the general pool, on every node."""
    slots = services.settings.slots
    while not stop.is_set():
        try:
            released = await services.slots.release_unused()
            if released:
                log.info("released %d unbooked reserved slots to the general pool", released)
            beds = await services.beds.release_unused()
            if beds:
                log.info("released %d unbooked reserved beds to the general pool", beds)
        except TelehealthError:
            log.warning("slot release skipped: the records store is unavailable")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), slots.release_interval_s)


async def _keep_appointments(services: Services, stop: asyncio.Event) -> None:
    """Booked consultations' reminders, starts and no-shows, on every node (each change is a guarded write)."""
    interval = services.settings.appointments.sweep_interval_s
    while not stop.is_set():
        try:
            await services.appointments.sweep()
        except TelehealthError:
            log.warning("booked consultations skipped: the records store is unavailable")
        except Exception:
            log.exception("booked consultations: the sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _on_shutdown(app: web.Application) -> None:
    if keys.SESSIONS in app:
        app[keys.SESSIONS].draining = True
    await ws.close_all(app)


def create_app(settings: Settings) -> web.Application:
    """Build the whole server from validated settings (secrets already final)."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # These log bound SQL parameters (patient names among them) at debug level: never let them.
    for name in ("aiosqlite", "sqlalchemy.engine", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=settings.uploads.max_bytes + 1024 * 1024,
    )
    app[keys.SETTINGS] = settings
    app[keys.NODE] = node_name(settings)
    app[keys.STARTUP_NOTES] = []
    app[keys.METRICS] = metrics.Metrics()
    app[keys.WEBSOCKETS] = set()
    root = web_dir()
    app[keys.RENDERER] = Renderer(root / "templates", root / "translations")
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_broker_ctx)
    app.cleanup_ctx.append(_signaling_ctx)
    app.cleanup_ctx.append(precheck_api.precheck_ctx)
    app.cleanup_ctx.append(i18n_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.on_response_prepare.append(security_headers)
    add_routes(app)
    app.router.add_static("/static/", root / "static", name="static", append_version=True)
    return app


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", pages.handle_index)
    r.add_get("/login", pages.handle_login_form)
    r.add_post("/login", pages.handle_login)
    r.add_post("/logout", pages.handle_logout)
    r.add_post("/language", pages.handle_language)
    r.add_get("/clinic", pages.handle_clinic_home)
    r.add_get("/specialist", pages.handle_specialist_home)
    r.add_get("/admin", pages.handle_admin_home)
    r.add_get("/healthz", health.handle_healthz)
    r.add_get("/readyz", health.handle_readyz)
    r.add_get("/ws", ws.handle_ws)
    r.add_get("/metrics", metrics.handle_metrics)
    api.add_routes(app)
    account_pages.add_routes(app)
    second_factor_pages.add_routes(app)
    consult_pages.add_routes(app)
    notes_api.add_routes(app)
    referrals_api.add_routes(app)
    record_pages.add_routes(app)
    slot_pages.add_routes(app)
    bed_pages.add_routes(app)
    attachments_api.add_routes(app)
    admin_pages.add_routes(app)
    people_pages.add_routes(app)
    audit_pages.add_routes(app)
    stats_pages.add_routes(app)
    precheck_api.add_routes(app)
    results_api.add_routes(app)
    agreements_api.add_routes(app)
    appointments_api.add_routes(app)
    appointment_pages.add_routes(app)
    openapi.add_routes(app)
