"""Every application key in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from telehealth.records.models import User

if TYPE_CHECKING:
    from telehealth.config import Settings
    from telehealth.matching.broker import Broker
    from telehealth.matching.service import Matcher
    from telehealth.media.precheck import PrecheckService
    from telehealth.records.store import Store
    from telehealth.server.i18n import Renderer
    from telehealth.server.metrics import Metrics
    from telehealth.server.ws import QueueUpdates
    from telehealth.services import Services
    from telehealth.signaling.hub import Hub
    from telehealth.signaling.sessions import SessionManager

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
MATCHER: web.AppKey[Matcher] = web.AppKey("matcher")
SERVICES: web.AppKey[Services] = web.AppKey("services")
HUB: web.AppKey[Hub] = web.AppKey("hub")
PRECHECK: web.AppKey[PrecheckService] = web.AppKey("precheck")
SESSIONS: web.AppKey[SessionManager] = web.AppKey("sessions")
RENDERER: web.AppKey[Renderer] = web.AppKey("renderer")
STARTUP_NOTES: web.AppKey[list[str]] = web.AppKey("startup_notes")
WEBSOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("websockets")
QUEUE_UPDATES: web.AppKey[QueueUpdates] = web.AppKey("queue_updates")
NODE: web.AppKey[str] = web.AppKey("node")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

# Per-request values set by the access middleware.
USER: web.RequestKey[User] = web.RequestKey("user", User)
CSRF: web.RequestKey[str] = web.RequestKey("csrf", str)
SESSION_DIGEST: web.RequestKey[str] = web.RequestKey("session_digest", str)
# "cookie" for browser sessions, "token" for API tokens.
AUTH: web.RequestKey[str] = web.RequestKey("auth", str)
# Which session or token the request came with, and when it stops working (a socket closes then).
CREDENTIAL: web.RequestKey[str] = web.RequestKey("credential", str)
CREDENTIAL_EXPIRES: web.RequestKey[float] = web.RequestKey("credential_expires", float)
