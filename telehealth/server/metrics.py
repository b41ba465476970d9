"""Prometheus metrics: one registry per application, gauges refreshed when scraped."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric

from telehealth.errors import ErrorCode
from telehealth.server import keys
from telehealth.server.auth import public

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Counting urgencies means reading entries; past this many per specialty the rest count as "unknown".
URGENCY_SAMPLE = 5000


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_length = Gauge("telehealth_queue_length", "Requests waiting, by specialty and urgency",
                                  ["specialty", "urgency"], registry=r)
        self.offered = Gauge("telehealth_offers_ringing", "Requests being rung to specialists now", registry=r)
        self.presence = Gauge("telehealth_specialists", "Specialists online, by presence", ["status"], registry=r)
        self.active_sessions = Gauge("telehealth_active_sessions", "Calls in progress", registry=r)
        self.connections = Gauge("telehealth_websocket_connections", "Open WebSocket connections on this node",
                                 registry=r)
        self.offer_latency = Histogram("telehealth_offer_latency_seconds",
                                       "From a request entering the queue to its first ring",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.claim_latency = Histogram("telehealth_claim_latency_seconds",
                                       "Time to accept or take a request (broker claim and store write)",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("telehealth_errors", "Errors returned to clients, by code", ["code"], registry=r)
        # Counted for every WebSocket message, so a plain integer (a Counter takes a lock for each), read when
        # the metrics are scraped.
        self.messages = 0
        r.register(_MessageCount(self))
        for code in ErrorCode:
            self.errors.labels(code.value)

    def count_error(self, code: ErrorCode) -> None:
        self.errors.labels(code.value).inc()


class _MessageCount:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("telehealth_websocket_messages", "WebSocket commands received",
                                  value=self._metrics.messages)


@public
async def handle_metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text format. Serve it on an address only the monitoring system reaches."""
    app = request.app
    metrics = app[keys.METRICS]
    broker, hub = app[keys.BROKER], app[keys.HUB]
    metrics.queue_length.clear()
    for specialty, length in (await broker.specialties_queued()).items():
        tally = Tally(e.urgency for e in await broker.queue_head(specialty, URGENCY_SAMPLE))
        for urgency, count in tally.items():
            metrics.queue_length.labels(specialty, urgency).set(count)
        if length > sum(tally.values()):
            metrics.queue_length.labels(specialty, "unknown").set(length - sum(tally.values()))
    stats = await broker.stats()
    metrics.offered.set(stats.offered)
    metrics.presence.clear()
    for status, count in (await broker.count_presence()).items():
        metrics.presence.labels(status).set(count)
    metrics.active_sessions.set(len(await app[keys.STORE].list_open_call_sessions()))
    metrics.connections.set(hub.connection_count)
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Stopwatch:
    """Times a block into a histogram."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.started = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.histogram.observe(time.perf_counter() - self.started)
