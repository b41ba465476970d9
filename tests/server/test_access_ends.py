"""Access ends everywhere at once: a deactivation, a new password, signing out, a revoked or expired token or
session closes the sockets opened with it (code 4001, the reason named) and nothing more reaches them; the
password policy; API tokens that expire and can be listed and revoked."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import CookieJar

from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from telehealth.signaling.connection import CLOSE_ACCESS_ENDED
from tests.conftest import csrf_from, make_settings
from tests.support.wsclient import Node, Peer, serve

# Closing must happen within this long (the bound), measured here only as a wait limit.
CLOSE_WITHIN_S = 2.0


class Browser:
    """A browser of its own (cookie jar), signed in through the login form."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.http = aiohttp.ClientSession(cookie_jar=CookieJar(unsafe=True))

    async def sign_in(self, username: str, password: str = DEMO_PASSWORD) -> int:
        page = await (await self.http.get(self.node.url("/login"))).text()
        resp = await self.http.post(self.node.url("/login"), allow_redirects=False, data={
            "username": username, "password": password, "csrf_token": csrf_from(page)})
        return resp.status

    async def csrf(self) -> str:
        return str((await (await self.http.get(self.node.url("/api/me"))).json())["csrf_token"])

    async def me(self) -> int:
        return (await self.http.get(self.node.url("/api/me"))).status

    async def socket(self) -> Peer:
        ws = await self.http.ws_connect(self.node.url("/ws"), headers={"Origin": self.node.base})
        peer = Peer(ws)
        await peer.event("hello")
        return peer

    async def post(self, path: str, **data: str) -> aiohttp.ClientResponse:
        return await self.http.post(self.node.url(path), data={"csrf_token": await self.csrf(), **data},
                                    allow_redirects=False)

    async def close(self) -> None:
        await self.http.close()


async def closed_for(peer: Peer, within: float = CLOSE_WITHIN_S) -> int | None:
    """Wait for the server to close the socket; its close code."""
    await asyncio.wait_for(peer.reader, within)
    return peer.ws.close_code


async def token_socket(node: Node, token: str) -> Peer:
    ws = await node.http.ws_connect(node.url("/ws"), headers={"Authorization": f"Bearer {token}"})
    peer = Peer(ws)
    await peer.event("hello")
    return peer


async def user_id(node: Node, username: str) -> int:
    store = node.server.app[keys.STORE]  # type: ignore[union-attr]
    user = await store.get_user_by_username(username)
    assert user is not None
    return int(user.id)


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    async with serve(make_settings(tmp_path)) as n:
        yield n


async def test_deactivating_a_specialist_closes_their_sockets_and_takes_them_off_duty(node: Node) -> None:
    specialist = await node.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    broker = node.server.app[keys.BROKER]  # type: ignore[union-attr]
    uid = await user_id(node, "cardio.chief")
    assert await broker.get_presence(uid) is not None
    admin = Browser(node)
    try:
        assert await admin.sign_in("alliance.admin") == 303
        user = await node.server.app[keys.STORE].get_user(uid)  # type: ignore[union-attr]
        resp = await admin.post(f"/admin/users/{uid}", display_name=user.display_name, title="chief",
                                specialties="cardiology")  # "active" left unticked
        assert resp.status == 303, await resp.text()
        code = await closed_for(specialist)
        assert code == CLOSE_ACCESS_ENDED
        assert await broker.get_presence(uid) is None
        # Nor can the account sign in again or mint a token: the answer of a wrong password.
        resp = await node.http.post(node.url("/api/tokens"), json={"username": "cardio.chief", "password": DEMO_PASSWORD})
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "auth_failed"
    finally:
        await admin.close()


async def test_an_administrators_new_password_ends_every_session_and_token(node: Node) -> None:
    token = await node.token("village1")
    by_token = await token_socket(node, token)
    doctor = Browser(node)
    admin = Browser(node)
    try:
        assert await doctor.sign_in("village1") == 303
        by_cookie = await doctor.socket()
        assert await admin.sign_in("alliance.admin") == 303
        uid = await user_id(node, "village1")
        resp = await admin.post(f"/admin/users/{uid}/password", password="a fresh passphrase 2026")
        assert resp.status == 303, await resp.text()
        assert await closed_for(by_token) == CLOSE_ACCESS_ENDED
        assert await closed_for(by_cookie) == CLOSE_ACCESS_ENDED
        assert await doctor.me() == 401
        resp = await node.http.get(node.url("/api/me"), headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401
    finally:
        await doctor.close()
        await admin.close()


async def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(node: Node) -> None:
    here, there = Browser(node), Browser(node)
    token = await node.token("village1")
    try:
        assert await here.sign_in("village1") == 303
        assert await there.sign_in("village1") == 303
        here_socket, there_socket = await here.socket(), await there.socket()
        by_token = await token_socket(node, token)
        # The current password is asked, and the new one must pass the policy.
        wrong = await here.post("/account/password", current_password="not it", new_password="a fresh passphrase 2026")
        assert wrong.status == 400 and 'id="current_password-error"' in await wrong.text()
        common = await here.post("/account/password", current_password=DEMO_PASSWORD, new_password="1234567890")
        assert common.status == 400 and 'id="new_password-error"' in await common.text()
        own_name = await here.post("/account/password", current_password=DEMO_PASSWORD, new_password="village1")
        assert own_name.status == 400
        resp = await here.post("/account/password", current_password=DEMO_PASSWORD,
                               new_password="a fresh passphrase 2026")
        assert resp.status == 303 and resp.headers["Location"] == "/account?saved=password"
        assert await closed_for(there_socket) == CLOSE_ACCESS_ENDED
        assert await closed_for(by_token) == CLOSE_ACCESS_ENDED
        assert await there.me() == 401 and await here.me() == 200
        await asyncio.sleep(0.3)
        assert not here_socket.reader.done()  # the socket of the session that changed it stays open
        assert await there.sign_in("village1", "a fresh passphrase 2026") == 303
    finally:
        await here.close()
        await there.close()


async def test_signing_out_closes_that_browsers_sockets_only(node: Node) -> None:
    one, two = Browser(node), Browser(node)
    try:
        assert await one.sign_in("cardio.chief") == 303
        assert await two.sign_in("cardio.chief") == 303
        one_socket, two_socket = await one.socket(), await two.socket()
        resp = await one.post("/logout")
        assert resp.status == 303
        code = await closed_for(one_socket)
        assert code == CLOSE_ACCESS_ENDED
        await asyncio.sleep(0.3)
        assert not two_socket.reader.done() and await two.me() == 200
    finally:
        await one.close()
        await two.close()


async def test_tokens_are_listed_and_revoked_by_their_owner_and_by_an_administrator(node: Node) -> None:
    first = await node.token("village1")
    second = await node.token("village1")
    first_socket = await token_socket(node, first)
    auth = {"Authorization": f"Bearer {second}"}
    listed = (await (await node.http.get(node.url("/api/tokens"), headers=auth)).json())["tokens"]
    assert len(listed) == 2 and all(t["live"] for t in listed)
    oldest = min(t["id"] for t in listed)
    resp = await node.http.delete(node.url(f"/api/tokens/{oldest}"), headers=auth)
    assert resp.status == 200
    assert await closed_for(first_socket) == CLOSE_ACCESS_ENDED
    assert (await node.http.get(node.url("/api/me"), headers={"Authorization": f"Bearer {first}"})).status == 401
    assert (await node.http.delete(node.url(f"/api/tokens/{oldest}"), headers=auth)).status == 404
    # Another user's token is not theirs to revoke (nor to see).
    other = await node.token("village2")
    other_auth = {"Authorization": f"Bearer {other}"}
    theirs = (await (await node.http.get(node.url("/api/tokens"), headers=other_auth)).json())["tokens"]
    assert (await node.http.delete(node.url(f"/api/tokens/{theirs[0]['id']}"), headers=auth)).status == 404
    # An administrator of the alliance revokes it from the account's page.
    admin = Browser(node)
    try:
        assert await admin.sign_in("alliance.admin") == 303
        uid = await user_id(node, "village1")
        page = await (await admin.http.get(node.url(f"/admin/users/{uid}"))).text()
        live = [int(i) for i in re.findall(r'action="/admin/users/\d+/tokens/(\d+)/revoke"', page)]
        assert live == [max(t["id"] for t in listed)]
        resp = await admin.post(f"/admin/users/{uid}/tokens/{live[0]}/revoke")
        assert resp.status == 303
        assert (await node.http.get(node.url("/api/me"), headers=auth)).status == 401
        actions = {e["action"] for e in await node.server.app[keys.STORE].list_audit(limit=50)}  # type: ignore[union-attr]
        assert "api_token.revoke" in actions
    finally:
        await admin.close()


async def test_a_token_past_its_lifetime_is_refused_and_its_socket_closes(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, security={"api_token_ttl_s": 2})) as node:
        token = await node.token("village1")
        peer = await token_socket(node, token)
        code = await closed_for(peer, within=6)
        assert code == CLOSE_ACCESS_ENDED
        resp = await node.http.get(node.url("/api/me"), headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401


async def test_new_accounts_get_the_password_policy(node: Node) -> None:
    admin = Browser(node)
    try:
        assert await admin.sign_in("alliance.admin") == 303
        store = node.server.app[keys.STORE]  # type: ignore[union-attr]
        clinic = next(o for o in await store.list_organisations() if o.level.value == "village_clinic")
        form = {"username": "new.doc", "display_name": "New Doctor", "role": "clinic_doctor",
                "organisation": str(clinic.id)}
        for bad in ("short", "password123", "qwertyuiop", "New Doctor", "new.doc"):
            resp = await admin.post("/admin/users", **form, password=bad)
            assert resp.status == 400 and 'id="password-error"' in await resp.text(), bad
        assert await store.get_user_by_username("new.doc") is None
        resp = await admin.post("/admin/users", **form, password="a fresh passphrase 2026")
        assert resp.status == 303
    finally:
        await admin.close()


async def test_access_ends_on_the_other_node_too(tmp_path: Path) -> None:
    """Two nodes sharing the records and a Redis: the deactivation made on one closes the socket on the other."""
    shared = {"redis_url": "redis://127.0.0.1:6379/0", "redis_prefix": f"access-{tmp_path.name}"}
    async with serve(make_settings(tmp_path, **shared)) as first:
        async with serve(make_settings(tmp_path, **shared)) as second:
            specialist = await second.connect("cardio.chief")
            await specialist.ok("presence.set", status="available")
            admin = Browser(first)
            try:
                assert await admin.sign_in("alliance.admin") == 303
                uid = await user_id(first, "cardio.chief")
                user = await first.server.app[keys.STORE].get_user(uid)  # type: ignore[union-attr]
                resp = await admin.post(f"/admin/users/{uid}", display_name=user.display_name, title="chief",
                                        specialties="cardiology")
                assert resp.status == 303
                assert await closed_for(specialist) == CLOSE_ACCESS_ENDED
                assert await second.server.app[keys.BROKER].get_presence(uid) is None  # type: ignore[union-attr]
            finally:
                await admin.close()
