"""Prometheus metrics of the model API (contract C: dashboards and alert rules rely on these names).

Module-level objects in the default registry, base units (seconds, totals). Label values are
bounded: `route` is a route template or "unmatched", `method` is a known verb or "OTHER".
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05, 0.10, ..., 1.0

REJECTION_REASONS = (
    "rate_limited",
    "overloaded",
    "unauthorized",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_request",
    "not_ready",
    "draining",
    "request_timeout",
)
INFERENCE_ENDPOINTS = ("classify", "predict", "v2_infer")
LABELS = ("scam", "legitimate")

HTTP_REQUESTS = Counter(
    "scamguard_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ("route", "method", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "scamguard_http_request_duration_seconds",
    "Time from receiving the request to sending the last response byte.",
    ("route", "method"),
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "scamguard_http_requests_in_flight",
    "HTTP requests being handled right now.",
)
INFERENCE_DURATION = Histogram(
    "scamguard_inference_duration_seconds",
    "Time of one model call (one text or one batch).",
    ("endpoint",),
    buckets=LATENCY_BUCKETS,
)
INFERENCES_IN_FLIGHT = Gauge(
    "scamguard_inferences_in_flight",
    "Inference requests admitted and not yet answered.",
)
INFERENCE_CONCURRENCY_LIMIT = Gauge(
    "scamguard_inference_concurrency_limit",
    "Admitted inference requests allowed at once (SCAMGUARD_MAX_INFLIGHT); more get 503.",
)
PREDICTIONS = Counter(
    "scamguard_predictions_total",
    "Texts classified, by predicted label.",
    ("label",),
)
PREDICTION_SCORE = Histogram(
    "scamguard_prediction_score",
    "Predicted probability of scam per text (watch its shape for drift).",
    buckets=SCORE_BUCKETS,
)
REQUESTS_REJECTED = Counter(
    "scamguard_requests_rejected_total",
    "Requests refused before or instead of inference, by reason.",
    ("reason",),
)
MODEL_INFO = Gauge(
    "scamguard_model_info",
    "The loaded model (value 1).",
    ("name", "version"),
)
MODEL_READY = Gauge(
    "scamguard_model_ready",
    "1 when a model is loaded and verified, else 0.",
)
MODEL_LOAD_FAILURES = Counter(
    "scamguard_model_load_failures_total",
    "Failed model loads, by reason.",
    ("reason",),
)

# Read from the admission proxy at scrape time (service.admission.AdmissionMetrics), where it runs:
# name (counters without _total), type, help. Declared here with the rest of the contract.
ADMISSION_SHED = (
    "scamguard_admission_shed",
    "counter",
    "Inference requests the admission proxy answered 503 + Retry-After itself (queue full, or no "
    "slot in time).",
)
ADMISSION_REQUESTS = (
    "scamguard_admission_requests",
    "counter",
    "Inference requests the admission proxy received.",
)
ADMISSION_QUEUED = (
    "scamguard_admission_queued_requests",
    "gauge",
    "Inference requests waiting in the admission proxy for a slot.",
)
ADMISSION_METRICS = (ADMISSION_SHED, ADMISSION_REQUESTS, ADMISSION_QUEUED)

# Children resolved once: a .labels() lookup per request costs more than the increment itself.
REJECTED = {reason: REQUESTS_REJECTED.labels(reason) for reason in REJECTION_REASONS}
INFERENCE_SECONDS = {endpoint: INFERENCE_DURATION.labels(endpoint) for endpoint in INFERENCE_ENDPOINTS}
PREDICTED = {label: PREDICTIONS.labels(label) for label in LABELS}
