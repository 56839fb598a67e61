"""What the running service knows: settings, the loaded model (or why it is not loaded), draining."""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from runtime.classifier import DEFAULT_MODEL_DIR, ModelLoadError, ScamClassifier
from service import metrics
from service.domain import ModelNotReady
from service.settings import Settings

logger = logging.getLogger("scamguard")

# Up to this many characters per call the model runs on the event loop (well under a millisecond
# for the shipped linear model; a thread hop would cost more than it saves). Bigger batches go to
# the thread pool so one large request cannot stall every other connection.
INLINE_MAX_CHARS = 16_384
# Threads that run those bigger calls at once. The scorer holds the GIL, so more threads add no
# throughput, only GIL hand-offs that starve the event loop. Measured with wrk on 2 cores, 24
# connections of single emails next to 8 of 32-email batches: with the default pool (40 threads)
# singles got 1.6k req/s at p99 37-47 ms; queued for one thread, 4.0-4.2k req/s at p99 10-11 ms,
# and more emails per second in total.
MODEL_THREADS = 1


def _failure_reason(message: str, model_dir: pathlib.Path) -> str:
    """A bounded label value for scamguard_model_load_failures_total."""
    lowered = message.replace(str(model_dir), "").lower()  # the path itself may contain any word
    if "checksum" in lowered:
        return "checksum_mismatch"
    if "missing" in lowered or "does not exist" in lowered:
        return "missing"
    return "invalid"


# What callers see of a failed load: the reason, never the artifact's path or checksums (the full
# message is in the ERROR log, for the operator).
_PUBLIC_LOAD_ERRORS = {
    "missing": "the model artifact is missing or incomplete (a file does not exist)",
    "checksum_mismatch": "the model artifact failed its checksum verification",
    "invalid": "the model artifact is invalid (metadata.json or a model file cannot be read)",
    "unexpected": "unexpected error loading the model",
}
# Retry-After on 503 not_ready/draining: long enough for a platform to route elsewhere or restart.
NOT_READY_RETRY_AFTER_SECONDS = 5


def _timed_scores(classifier: ScamClassifier, texts: Sequence[str]) -> tuple[list[float], float]:
    """The model call and its duration (measured where it runs: no queueing for a thread in it)."""
    started = time.perf_counter()
    scores = classifier.score_many(texts)
    return scores, time.perf_counter() - started


@dataclass(frozen=True)
class Prediction:
    score: float
    is_scam: bool

    @property
    def label(self) -> str:
        return "scam" if self.is_scam else "legitimate"


@dataclass
class ServiceState:
    settings: Settings
    classifier: ScamClassifier | None = None
    load_error: str | None = "model not loaded yet (starting up)"
    draining: bool = False
    # JSON fragment {"name": ..., "version": ...}, built once at load for the response hot path.
    model_ref: dict[str, str] | None = None  # {"name", "version"} of the loaded model
    started_at: float = field(default_factory=time.time)
    # Created on first use: an anyio limiter belongs to the running event loop.
    _model_threads: anyio.CapacityLimiter | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.classifier is not None and not self.draining

    def load_model(self) -> None:
        """Load and verify the artifact; on failure keep serving (probes say why), never raise."""
        model_dir = self.settings.model_dir or DEFAULT_MODEL_DIR
        started = time.perf_counter()
        try:
            classifier = ScamClassifier.load(model_dir)
        except ModelLoadError as exc:
            self._failed(str(exc), _failure_reason(str(exc), pathlib.Path(model_dir)), model_dir)
            return
        except Exception as exc:  # a bug or an unexpected artifact must not crash-loop the pod
            logger.exception("model load crashed", extra={"model_dir": str(model_dir)})
            self._failed(f"unexpected error loading the model: {exc!r}", "unexpected", model_dir)
            return
        info = classifier.info
        self.classifier = classifier
        self.load_error = None
        self.model_ref = {"name": info.name, "version": info.version}
        metrics.MODEL_INFO.labels(info.name, info.version).set(1)
        metrics.MODEL_READY.set(1)
        logger.info(
            "model loaded",
            extra={
                "model_name": info.name,
                "model_version": info.version,
                "threshold": info.threshold,
                "model_dir": str(model_dir),
                "scorer": classifier.scorer,
                "load_seconds": round(time.perf_counter() - started, 4),
            },
        )

    def _failed(self, message: str, reason: str, model_dir: object) -> None:
        self.classifier = None
        self.load_error = f"{_PUBLIC_LOAD_ERRORS[reason]}; the service log says more"
        metrics.MODEL_READY.set(0)
        metrics.MODEL_LOAD_FAILURES.labels(reason).inc()
        logger.error(
            "model load failed; serving 503 until fixed and restarted",
            extra={"reason": reason, "error": message, "model_dir": str(model_dir)},
        )

    def require_model(self) -> ScamClassifier:
        classifier = self.classifier
        if classifier is None:
            raise ModelNotReady(f"model not available: {self.load_error}", NOT_READY_RETRY_AFTER_SECONDS)
        return classifier

    def start_draining(self) -> None:
        if not self.draining:
            self.draining = True
            logger.info("draining: readiness now fails, finishing in-flight requests")

    async def predict(self, texts: Sequence[str], endpoint: str) -> list[Prediction]:
        """Score texts with metrics (latency, labels, score histogram). Raises 503 without a model."""
        classifier = self.require_model()
        if sum(map(len, texts)) <= INLINE_MAX_CHARS:
            scores, seconds = _timed_scores(classifier, texts)
        else:
            if self._model_threads is None:
                self._model_threads = anyio.CapacityLimiter(MODEL_THREADS)
            scores, seconds = await anyio.to_thread.run_sync(
                _timed_scores, classifier, texts, limiter=self._model_threads
            )
        metrics.INFERENCE_SECONDS[endpoint].observe(seconds)
        threshold_check = classifier.is_scam
        predictions = [Prediction(float(score), threshold_check(score)) for score in scores]
        observe = metrics.PREDICTION_SCORE.observe
        scam = metrics.PREDICTED["scam"]
        legit = metrics.PREDICTED["legitimate"]
        for prediction in predictions:
            observe(prediction.score)
            (scam if prediction.is_scam else legit).inc()
        return predictions
