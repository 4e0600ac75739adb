"""Prometheus metrics of one app (its own registry, so several apps in one process do not clash).

    repspace_http_requests_total{method, route, status}
    repspace_http_request_duration_seconds{method, route}          histogram
    repspace_http_requests_in_flight
    repspace_embedding_inputs_total{model, dimensions_method}
    repspace_embedding_batch_size{model}                            histogram, texts per encoded batch
    repspace_embedding_batch_tokens{model}                          histogram
    repspace_embedding_batch_seconds{model}                         histogram, encode time per batch
    repspace_embedding_queue_depth{model}                           gauge, texts waiting
    repspace_rejected_requests_total{reason}                        401 / 413 / 429 / 504 ...
    repspace_model_ready{model}                                     gauge, 1 once loaded
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("repspace_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r)
        self.latency = Histogram("repspace_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("repspace_http_requests_in_flight", "HTTP requests being served", registry=r)
        self.inputs = Counter("repspace_embedding_inputs", "texts embedded", ["model", "dimensions_method"], registry=r)
        self.batch_size = Histogram("repspace_embedding_batch_size", "texts per encoded batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_tokens = Histogram("repspace_embedding_batch_tokens", "tokens per encoded batch", ["model"],
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.batch_seconds = Histogram("repspace_embedding_batch_seconds", "encode time per batch", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("repspace_embedding_queue_depth", "texts waiting to be encoded", ["model"], registry=r)
        self.rejected = Counter("repspace_rejected_requests", "requests refused", ["reason"], registry=r)
        self.ready = Gauge("repspace_model_ready", "1 once the model is loaded", ["model"], registry=r)

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        size, tokens, secs = self.batch_size.labels(model), self.batch_tokens.labels(model), self.batch_seconds.labels(model)

        def observe(n: int, n_tokens: int, seconds: float) -> None:
            size.observe(n)
            tokens.observe(n_tokens)
            secs.observe(seconds)

        return observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
