"""Settings: read once from TOML, overridden by TELEHEALTH_* variables, validated, frozen."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telehealth.records.quota import SharePolicy

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
ENV_PREFIX = "TELEHEALTH_"
MODES = ("development", "production", "test")
# In the data directory: the default anchor of the audit chain, and the audit key made up outside production.
ANCHOR_FILE = "audit-anchor.jsonl"
DEVELOPMENT_AUDIT_KEY_FILE = "audit.key"
# Read separately (secrets) or by other parts (profile, log level, a new user's password).
SPECIAL_VARIABLES = frozenset({"TELEHEALTH_PROFILE", "TELEHEALTH_SECRET_KEY", "TELEHEALTH_AUDIT_KEY",
                               "TELEHEALTH_TURN__SECRET",
                               "TELEHEALTH_ICE__SECRET", "TELEHEALTH_LOG_LEVEL", "TELEHEALTH_NEW_PASSWORD"})


# ws:// or wss://, a host name or an address, and a port: the one thing a CSP source may name here.
_WS_ORIGIN = re.compile(r"wss?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\d{1,5}))?")


class ConfigError(Exception):
    """A setting is missing or has a value the server cannot use."""


@dataclass(frozen=True)
class SecuritySettings:
    session_ttl_s: int = 43200
    # API tokens stop working this long after they were issued.
    api_token_ttl_s: int = 90 * 86400
    # Failed sign-ins for one account from one address before each further attempt waits; then the wait
    # starts at login_delay_s and doubles with each failure, up to login_max_delay_s.
    login_attempts: int = 5
    # The same for one account from every address together (one address adds at most login_attempts).
    account_login_attempts: int = 20
    login_delay_s: float = 2.0
    login_max_delay_s: float = 900.0
    # Failures are forgotten this long after the last wait ended.
    login_window_s: int = 300
    cookie_secure: str = "auto"
    # The pages open their WebSocket to their own host; set this (wss://host[:port]) only when it is served
    # from another address: the Content-Security-Policy lets the pages connect there and nowhere else.
    websocket_origin: str = ""
    # Reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Host are believed.
    trusted_proxies: tuple[str, ...] = ()
    # Roles whose accounts must sign in with a second factor (an authenticator app); an account without one
    # enrols at its next sign-in.
    second_factor_roles: tuple[str, ...] = ("admin",)

    def __post_init__(self) -> None:
        _positive(self, "session_ttl_s", "api_token_ttl_s", "login_attempts", "account_login_attempts",
                  "login_delay_s", "login_max_delay_s", "login_window_s")
        if self.cookie_secure not in ("auto", "true", "false"):
            raise ConfigError("security.cookie_secure must be auto, true or false")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(f"security.trusted_proxies: {proxy!r} is not an address or a network such as "
                                  "10.0.0.0/8") from None
        roles = ("clinic_doctor", "specialist", "admin")
        for role in self.second_factor_roles:
            if role not in roles:
                raise ConfigError(f"security.second_factor_roles: {role!r} is not a role ({', '.join(roles)})")
        if self.websocket_origin:
            match = _WS_ORIGIN.fullmatch(self.websocket_origin)
            if match is None or int(match.group(1) or 0) > 65535:
                raise ConfigError(f"security.websocket_origin: {self.websocket_origin!r} is not an origin such as "
                                  "wss://ws.example.org or wss://ws.example.org:8443")


@dataclass(frozen=True)
class MatchingSettings:
    ring_timeout_s: float = 30
    named_specialist_window_s: float = 120
    widen_after_s: float = 180
    head_start_emergency_s: float = 3600
    head_start_urgent_s: float = 900
    head_start_routine_s: float = 0
    sla_emergency_s: float = 600
    sla_urgent_s: float = 3600
    sla_routine_s: float = 14400
    presence_ttl_s: float = 45
    sweep_interval_s: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "ring_timeout_s", "presence_ttl_s", "sweep_interval_s",
                  "sla_emergency_s", "sla_urgent_s", "sla_routine_s")
        if not (self.head_start_emergency_s >= self.head_start_urgent_s >= self.head_start_routine_s >= 0):
            raise ConfigError("matching head starts must satisfy emergency >= urgent >= routine >= 0")

    def head_start(self, urgency: str) -> float:
        return float(getattr(self, f"head_start_{urgency}_s"))

    def sla(self, urgency: str) -> float:
        return float(getattr(self, f"sla_{urgency}_s"))


@dataclass(frozen=True)
class SignalingSettings:
    max_message_bytes: int = 262144
    send_queue_size: int = 256
    rate_per_s: float = 50
    rate_burst: int = 200
    heartbeat_s: float = 20
    auth_timeout_s: float = 10
    reconnect_grace_s: float = 60

    def __post_init__(self) -> None:
        _positive(self, "max_message_bytes", "send_queue_size", "rate_per_s", "rate_burst",
                  "heartbeat_s", "auth_timeout_s", "reconnect_grace_s")


@dataclass(frozen=True)
class IceSettings:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    # The expected length of a call: a TURN credential, given to a participant of a call that is to come or in
    # progress, lasts this long.
    call_length_s: int = 1800
    secret: str = ""

    def __post_init__(self) -> None:
        _positive(self, "call_length_s")
        for url in self.stun_urls:
            if not url.startswith(("stun:", "stuns:")):
                raise ConfigError(f"ice.stun_urls: {url!r} is not a stun: or stuns: URL")
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise ConfigError(f"ice.turn_urls: {url!r} is not a turn: or turns: URL")


@dataclass(frozen=True)
class AuditSettings:
    # The append-only file the head of the audit chain is written to after each commit that adds entries;
    # empty: audit-anchor.jsonl in the data directory. Keep it (or a copy) where the database's editors
    # cannot rewrite it.
    anchor_path: str = ""


@dataclass(frozen=True)
class UploadSettings:
    max_bytes: int = 20 * 1024 * 1024

    def __post_init__(self) -> None:
        _positive(self, "max_bytes")


@dataclass(frozen=True)
class PrecheckSettings:
    # Worker processes running the server's own WebRTC peer for connection checks, and checks per worker.
    workers: int = 1
    per_worker: int = 2
    # How long media flows both ways during a check.
    seconds: float = 5.0
    # Addresses the server's peer offers as host candidates; empty: every address of the machine.
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _positive(self, "workers", "per_worker", "seconds")


@dataclass(frozen=True)
class SlotSettings:
    # The hospitals' local time: a slot's day, and its release cut-off, are counted in it.
    timezone: str = "Asia/Shanghai"
    # Unbooked reserved slots go back to the general pool this many hours before their day starts.
    release_hours_before: float = 24.0
    # How often the server looks for reserved slots past their cut-off.
    release_interval_s: float = 60.0
    # The stricter choice: every hospital reserves at least 20 % of its outpatient slots, not only the
    # hospitals that lead an alliance (docs/records.md).
    floor_for_every_hospital: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"slots.timezone: {self.timezone!r} is not a known time zone") from None
        if self.release_hours_before < 0:
            raise ConfigError("slots.release_hours_before must not be negative")
        _positive(self, "release_interval_s")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def share_policy(self) -> SharePolicy:
        return SharePolicy(floor_for_every_hospital=self.floor_for_every_hospital)


@dataclass(frozen=True)
class AppointmentSettings:
    """Booked consultations (docs/scheduling.md)."""

    # Reminders to both sides: this many seconds before the time (the day before, and shortly before).
    remind_day_before_s: float = 86400.0
    remind_soon_s: float = 600.0
    # The booked consultation becomes a call both sides may join this long before its time.
    join_before_s: float = 600.0
    # Nobody joined this long after the time: the no-show is recorded.
    no_show_grace_s: float = 900.0
    # A booked consultation's length unless the specialist's hours say otherwise.
    duration_min: int = 30
    # How often the server looks for reminders, starts and no-shows due.
    sweep_interval_s: float = 15.0

    def __post_init__(self) -> None:
        _positive(self, "remind_day_before_s", "remind_soon_s", "no_show_grace_s", "duration_min",
                  "sweep_interval_s")
        if self.join_before_s < 0:
            raise ConfigError("appointments.join_before_s must not be negative")
        if not 5 <= self.duration_min <= 240:
            raise ConfigError("appointments.duration_min must be from 5 to 240")


@dataclass(frozen=True)
class Settings:
    mode: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "th"
    allowed_origins: tuple[str, ...] = ()
    default_language: str = "zh_CN"
    node_name: str = ""
    # Log lines as JSON objects (one per line, for a log collector) or as text (for a terminal).
    log_format: str = "text"
    secret_key: str = ""
    # The key of the audit chain's HMACs: from TELEHEALTH_AUDIT_KEY or TELEHEALTH_AUDIT_KEY_FILE, never TOML.
    audit_key: str = ""
    demo: bool = False
    security: SecuritySettings = field(default_factory=SecuritySettings)
    matching: MatchingSettings = field(default_factory=MatchingSettings)
    signaling: SignalingSettings = field(default_factory=SignalingSettings)
    ice: IceSettings = field(default_factory=IceSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    slots: SlotSettings = field(default_factory=SlotSettings)
    appointments: AppointmentSettings = field(default_factory=AppointmentSettings)
    precheck: PrecheckSettings = field(default_factory=PrecheckSettings)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range")
        if self.log_format not in ("json", "text"):
            raise ConfigError("log_format must be json or text")
        if self.default_language not in ("zh_CN", "en"):
            raise ConfigError("default_language must be zh_CN or en")
        if self.database_url and not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ConfigError("database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if not self.redis_prefix or not self.redis_prefix.replace("_", "").replace("-", "").isalnum():
            raise ConfigError("redis_prefix must be letters, digits, - or _")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
            raise ConfigError("redis_url must start with redis://, rediss://, unix:// or redis+sentinel://")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'telehealth.sqlite3'}"

    @property
    def audit_anchor_path(self) -> Path:
        return Path(self.audit.anchor_path) if self.audit.anchor_path else Path(self.data_dir) / ANCHOR_FILE

    @property
    def uses_embedded_database(self) -> bool:
        return not self.database_url or self.database_url.startswith("sqlite")

    @property
    def cookie_secure(self) -> bool:
        if self.security.cookie_secure == "auto":
            return self.mode == "production"
        return self.security.cookie_secure == "true"

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            section = type(obj).__name__.removesuffix("Settings").lower()
            raise ConfigError(f"{section}.{name} must be greater than 0, not {value}")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a TOML or environment value into the field's declared type, or explain why not."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(str(item) for item in value)
    if isinstance(origin, type) and issubclass(origin, types.UnionType):  # pragma: no cover
        return value
    raise ConfigError(f"{where}: unsupported setting type {annotation!r}")


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) in {where or 'top level'}: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        hint = hints[f.name]
        path = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(hint):
            if not isinstance(data[f.name], Mapping):
                raise ConfigError(f"{path} must be a section")
            kwargs[f.name] = _build(typing.cast(type[Any], hint), data[f.name], path)
        else:
            kwargs[f.name] = _coerce(data[f.name], hint, path)
    return cls(**kwargs)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    if name in env:
        return env[name]
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
    return None


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    sections = {"security", "matching", "signaling", "ice", "audit", "uploads", "slots", "precheck", "appointments"}
    data: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key.endswith("_FILE") or key in SPECIAL_VARIABLES:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name.startswith("test_"):
            continue  # variables for the test suite, not for the server
        if "__" in name:
            section, _, sub = name.partition("__")
            if section not in sections:
                raise ConfigError(f"{key}: there is no settings section {section!r}")
            data.setdefault(section, {})[sub] = value
        else:
            data[name] = value
    return data


def load_settings(
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Read config/default.toml, then a profile file, then TELEHEALTH_* variables, then explicit overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    files = [CONFIG_DIR / "default.toml"]
    profile = profile or env.get("TELEHEALTH_PROFILE")
    if profile:
        files.append(CONFIG_DIR / f"{profile}.toml")
    if config_file:
        files.append(Path(config_file))
    for path in files:
        if not path.exists():
            if path == CONFIG_DIR / "default.toml":
                continue  # an installed package without the config folder runs on the built-in defaults
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = _merge(data, tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    data = _merge(data, _env_overrides(env))
    secret = _read_secret(env, "TELEHEALTH_SECRET_KEY")
    if secret is not None:
        data["secret_key"] = secret
    audit_key = _read_secret(env, "TELEHEALTH_AUDIT_KEY")
    if audit_key is not None:
        data["audit_key"] = audit_key
    turn_secret = _read_secret(env, "TELEHEALTH_TURN__SECRET")
    if turn_secret is None:
        turn_secret = _read_secret(env, "TELEHEALTH_ICE__SECRET")
    if turn_secret is not None:
        data.setdefault("ice", {})["secret"] = turn_secret
    if overrides:
        data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    return typing.cast(Settings, _build(Settings, data, ""))


def finalize_secrets(settings: Settings) -> tuple[Settings, list[str]]:
    """Check that secrets exist; outside production, make up the missing ones and say so."""
    notes: list[str] = []
    if settings.secret_key and len(settings.secret_key) < 16:
        raise ConfigError("TELEHEALTH_SECRET_KEY must be at least 16 characters long")
    if settings.audit_key and len(settings.audit_key) < 16:
        raise ConfigError("TELEHEALTH_AUDIT_KEY must be at least 16 characters long")
    if settings.mode == "production":
        if not settings.secret_key:
            raise ConfigError(
                "production mode needs a secret key: set TELEHEALTH_SECRET_KEY "
                "(or TELEHEALTH_SECRET_KEY_FILE) to a long random string")
        if not settings.audit_key:
            raise ConfigError(
                "production mode needs an audit key: set TELEHEALTH_AUDIT_KEY (or TELEHEALTH_AUDIT_KEY_FILE) "
                "to a long random string, kept outside the database and kept for as long as the audit log")
        if settings.ice.turn_urls and not settings.ice.secret:
            raise ConfigError(
                "ice.turn_urls is set but the TURN shared secret is missing: set TELEHEALTH_TURN__SECRET "
                "to coturn's static-auth-secret")
        return settings, notes
    if not settings.secret_key:
        settings = settings.with_overrides(secret_key=secrets.token_urlsafe(32))
        notes.append("no TELEHEALTH_SECRET_KEY set: generated a random one for this run "
                     "(sessions end when the server restarts)")
    if not settings.audit_key:
        # The key file itself is made when the store first needs it (`audit_key_of`).
        notes.append(f"no TELEHEALTH_AUDIT_KEY set: the audit chain is keyed with {DEVELOPMENT_AUDIT_KEY_FILE} "
                     "in the data directory, beside the database (fine for development, not for production)")
    if settings.ice.turn_urls and not settings.ice.secret:
        raise ConfigError("ice.turn_urls is set but the TURN shared secret is missing: "
                          "set TELEHEALTH_TURN__SECRET to coturn's static-auth-secret")
    return settings, notes


def development_audit_key(data_dir: str) -> str:
    """Outside production, the audit key kept in the data directory, made on first use: one made up per run
    would make every earlier entry fail the check after a restart."""
    path = Path(data_dir) / DEVELOPMENT_AUDIT_KEY_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key {path}: {exc.strerror}") from None
    key = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Exclusive creation: two processes starting at once keep the one key the first wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot write the audit key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


def audit_key_of(settings: Settings) -> bytes:
    """The audit chain's key as bytes: the configured one; outside production, the data directory's."""
    if settings.audit_key:
        return settings.audit_key.encode()
    if settings.mode == "production":
        raise ConfigError("production mode needs an audit key: set TELEHEALTH_AUDIT_KEY or TELEHEALTH_AUDIT_KEY_FILE")
    return development_audit_key(settings.data_dir).encode()
