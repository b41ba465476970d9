"""TURN credentials in the scheme coturn's use-auth-secret checks."""

import base64
import hashlib
import hmac

from telehealth.config import IceSettings
from telehealth.signaling.ice import ice_servers, turn_credentials


def test_turn_credentials_follow_the_shared_secret_scheme() -> None:
    username, password = turn_credentials("s3cret", 42, now=1_000_000.4, ttl_s=600)
    assert username == "1000600:42"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1000600:42", hashlib.sha1).digest()).decode()
    assert password == expected


def test_ice_servers_in_the_browser_shape() -> None:
    settings = IceSettings(stun_urls=("stun:127.0.0.1:3478",), turn_urls=("turn:127.0.0.1:3478?transport=udp",),
                           call_length_s=60, secret="k")
    servers = ice_servers(settings, 7, now=100.0)
    assert servers[0] == {"urls": ["stun:127.0.0.1:3478"]}
    assert servers[1]["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert servers[1]["username"] == "160:7" and servers[1]["credential"]
    assert ice_servers(IceSettings(), 7, now=0) == []
