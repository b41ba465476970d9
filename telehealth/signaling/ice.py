"""ICE servers for a call: STUN URLs and TURN with time-limited credentials (coturn `use-auth-secret`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from telehealth.config import IceSettings


def turn_credentials(secret: str, user_id: int | str, now: float, ttl_s: int) -> tuple[str, str]:
    """The "TURN REST API" scheme: username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username))."""
    username = f"{int(now) + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: IceSettings, user_id: int, now: float) -> list[dict[str, Any]]:
    """The RTCConfiguration.iceServers list a client should use, in the browser's shape."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.secret:
        username, credential = turn_credentials(settings.secret, user_id, now, settings.turn_ttl_s)
        servers.append({"urls": list(settings.turn_urls), "username": username, "credential": credential})
    return servers
