"""Settings: defaults, profile, environment overrides, validation and secrets."""

from pathlib import Path

import pytest

from telehealth.config import ConfigError, finalize_secrets, load_settings


def test_defaults_are_the_embedded_single_machine_setup() -> None:
    s = load_settings(env={})
    assert s.mode == "development" and s.port == 8080 and s.host == "127.0.0.1"
    assert s.database_url == "" and s.redis_url == ""
    assert s.uses_embedded_database
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.matching.ring_timeout_s == 30


def test_test_profile_shortens_timers() -> None:
    s = load_settings(profile="test", env={})
    assert s.mode == "test" and s.matching.ring_timeout_s < 30


def test_environment_overrides_top_level_and_sections() -> None:
    env = {"TELEHEALTH_PORT": "9001", "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "12.5",
           "TELEHEALTH_ICE__STUN_URLS": "stun:a.example:3478, stun:b.example:3478",
           "TELEHEALTH_REDIS_URL": "redis://127.0.0.1:6379/0"}
    s = load_settings(env=env)
    assert s.port == 9001
    assert s.matching.ring_timeout_s == 12.5
    assert s.ice.stun_urls == ("stun:a.example:3478", "stun:b.example:3478")
    assert s.redis_url == "redis://127.0.0.1:6379/0" and s.uses_embedded_database


@pytest.mark.parametrize(("env", "fragment"), [
    ({"TELEHEALTH_PORT": "eighty"}, "port: expected a whole number"),
    ({"TELEHEALTH_MATCHING__RING_TIMEOUT_S": "0"}, "matching.ring_timeout_s must be greater than 0"),
    ({"TELEHEALTH_NOPE__X": "1"}, "no settings section 'nope'"),
    ({"TELEHEALTH_DATABASE_URL": "mysql://x"}, "database_url must start with"),
    ({"TELEHEALTH_MODE": "staging"}, "mode must be one of"),
    ({"TELEHEALTH_ICE__TURN_URLS": "http://x"}, "is not a turn: or turns: URL"),
])
def test_bad_values_are_refused_with_the_setting_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert fragment in str(info.value)


def test_production_without_secret_stops_with_a_clear_message() -> None:
    s = load_settings(env={"TELEHEALTH_MODE": "production"})
    with pytest.raises(ConfigError) as info:
        finalize_secrets(s)
    assert "TELEHEALTH_SECRET_KEY" in str(info.value)


def test_development_generates_a_secret_and_says_so() -> None:
    s, notes = finalize_secrets(load_settings(env={}))
    assert len(s.secret_key) >= 32
    assert notes and "generated" in notes[0]


def test_secret_from_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("a-secret-from-a-file-of-enough-length\n")
    key = tmp_path / "audit-key"
    key.write_text("an-audit-key-from-a-file-of-enough-length\n")
    s = load_settings(env={"TELEHEALTH_SECRET_KEY_FILE": str(path), "TELEHEALTH_AUDIT_KEY_FILE": str(key),
                           "TELEHEALTH_MODE": "production"})
    s, notes = finalize_secrets(s)
    assert s.secret_key == "a-secret-from-a-file-of-enough-length" and notes == []
    assert s.audit_key == "an-audit-key-from-a-file-of-enough-length"


def test_production_without_an_audit_key_stops_with_a_clear_message() -> None:
    s = load_settings(env={"TELEHEALTH_MODE": "production", "TELEHEALTH_SECRET_KEY": "s" * 32})
    with pytest.raises(ConfigError) as info:
        finalize_secrets(s)
    assert "TELEHEALTH_AUDIT_KEY" in str(info.value)


def test_turn_urls_need_the_shared_secret() -> None:
    s = load_settings(env={"TELEHEALTH_ICE__TURN_URLS": "turn:127.0.0.1:3478"})
    with pytest.raises(ConfigError, match="TURN shared secret"):
        finalize_secrets(s)
    s = load_settings(env={"TELEHEALTH_ICE__TURN_URLS": "turn:127.0.0.1:3478", "TELEHEALTH_TURN__SECRET": "x"})
    assert finalize_secrets(s)[0].ice.secret == "x"
