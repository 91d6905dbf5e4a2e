"""``/metrics``: Prometheus counters and gauges of one server (as vLLM and TGI expose them).

Counted where every chat turn passes (:meth:`serving.app.service.ChatService.turn`, shared by the UI and the
API) and where feedback is stored; gauges are read at scrape time (the generation gate, the Gradio queue, the
feedback store). Labels are fixed words (route, mode, outcome, stage, kind); no text a customer wrote, no
user name and no id ever becomes a label or a value.

Counters (``_total``) count since the server started:

* ``parley_requests_total{route="ui|api", mode="support|translate", outcome}``: chat turns; ``outcome`` is
  ``stop``, ``timeout``, ``handoff``, ``refused`` (the guard), ``busy`` (no slot), ``limit`` (over a limit),
  ``cancelled`` (the client left) or ``error``.
* ``parley_request_duration_seconds`` and ``parley_time_to_first_token_seconds`` (histograms, same labels
  less outcome): turns that ran to an end.
* ``parley_guard_blocks_total{stage="input|output"}``: refused requests and replaced answers.
* ``parley_pointed_to_human_total{cause="filler|benign_refusal"}``: support answers the server completed
  (only filler) or replaced (a policy refusal of a clearly benign request) with the way to a human colleague.
* ``parley_feedback_total{kind="like|dislike|rating|correction"}``, ``parley_handoff_tickets_opened_total``,
  ``parley_handoff_tickets_closed_total``.

Gauges (now): ``parley_queue_depth{queue="generation|ui"}``, ``parley_generations_running``,
``parley_generation_slots``, and from the store ``parley_handoff_tickets_open``,
``parley_feedback_votes{vote="like|dislike"}`` and ``parley_like_ratio`` (all stored votes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

log = logging.getLogger("parley.serve")

ROUTES = ("ui", "api")
MODES = ("support", "translate")
OUTCOMES = ("stop", "timeout", "handoff", "refused", "busy", "limit", "cancelled", "error")
FINISHED = ("stop", "timeout", "handoff", "refused")
FEEDBACK_KINDS = ("like", "dislike", "rating", "correction")
# Seconds; CPU answers take a few seconds, a queued one up to the request timeout.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class Metrics:
    """One registry per server (tests run several servers in one process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("parley_requests", "Chat turns by front end (route), task (mode) and outcome",
                                ["route", "mode", "outcome"], registry=r)
        self.duration = Histogram("parley_request_duration_seconds",
                                  "Seconds from a chat turn's arrival to its last token (turns that ran to an end)",
                                  ["route", "mode"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_token = Histogram("parley_time_to_first_token_seconds",
                                     "Seconds from a chat turn's arrival to its first text (a guarded API answer "
                                     "arrives whole)", ["route", "mode"], buckets=FIRST_TOKEN_BUCKETS, registry=r)
        self.guard_blocks = Counter("parley_guard_blocks", "Requests refused (stage=input) and answers replaced "
                                    "(stage=output) by the safety guard", ["stage"], registry=r)
        self.pointed_to_human = Counter(
            "parley_pointed_to_human", "Support answers completed (cause=filler) or replaced (cause=benign_refusal) "
            "with the way to a human colleague", ["cause"], registry=r)
        self.feedback = Counter("parley_feedback", "Feedback received: likes, dislikes, ratings, corrections",
                                ["kind"], registry=r)
        self.tickets_opened = Counter("parley_handoff_tickets_opened", "Handoff tickets opened", registry=r)
        self.tickets_closed = Counter("parley_handoff_tickets_closed", "Handoff tickets closed by an operator",
                                      registry=r)
        self.info = Gauge("parley_model_info", "The served model (value 1)", ["model", "guard"], registry=r)
        for route in ROUTES:
            for mode in MODES:
                self.duration.labels(route, mode)
                self.first_token.labels(route, mode)
                for outcome in FINISHED:
                    self.requests.labels(route, mode, outcome)
        for stage in ("input", "output"):
            self.guard_blocks.labels(stage)
        for cause in ("filler", "benign_refusal"):
            self.pointed_to_human.labels(cause)
        for kind in FEEDBACK_KINDS:
            self.feedback.labels(kind)
        self._live: _LiveState | None = None

    # --- recording (called by the chat service) ---------------------------------------------------------

    def turn_finished(self, route: str, mode: str, outcome: str, seconds: float | None,
                      first_token_s: float | None) -> None:
        self.requests.labels(route, mode, outcome).inc()
        if outcome in FINISHED and seconds is not None:
            self.duration.labels(route, mode).observe(seconds)
            if first_token_s is not None:
                self.first_token.labels(route, mode).observe(first_token_s)

    def guard_block(self, stage: str) -> None:
        self.guard_blocks.labels(stage).inc()

    def pointed_to_human_for(self, cause: str) -> None:
        self.pointed_to_human.labels(cause).inc()

    def feedback_given(self, like: bool | None, rating: int | None, correction: str | None) -> None:
        if like is not None:
            self.feedback.labels("like" if like else "dislike").inc()
        if rating is not None:
            self.feedback.labels("rating").inc()
        if correction is not None:
            self.feedback.labels("correction").inc()

    # --- gauges read at scrape time ----------------------------------------------------------------------

    def bind(self, *, gate: Any, store: Any, ui_queue: Callable[[], int] | None = None, model: str = "",
             guard: bool = False) -> None:
        """Attach the live objects the gauges read; called once by the server."""
        self.info.labels(model, "on" if guard else "off").set(1)
        if self._live is None:
            self._live = _LiveState(gate, store, ui_queue)
            self.registry.register(self._live)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when the scraper asks for it) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _LiveState:
    """A collector that reads the gate, the Gradio queue and the store when Prometheus scrapes."""

    def __init__(self, gate: Any, store: Any, ui_queue: Callable[[], int] | None) -> None:
        self.gate, self.store, self.ui_queue = gate, store, ui_queue

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "queue": GaugeMetricFamily("parley_queue_depth", "Requests waiting: for a generation slot "
                                       "(queue=generation) or in the chat UI's Gradio queue (queue=ui)",
                                       labels=["queue"]),
            "running": GaugeMetricFamily("parley_generations_running", "Generations running now"),
            "slots": GaugeMetricFamily("parley_generation_slots", "Generations that may run at once"),
            "open": GaugeMetricFamily("parley_handoff_tickets_open", "Handoff tickets not closed yet (store)"),
            "votes": GaugeMetricFamily("parley_feedback_votes", "Likes and dislikes in the feedback store",
                                       labels=["vote"]),
            "ratio": GaugeMetricFamily("parley_like_ratio", "Likes / (likes + dislikes) in the feedback store "
                                       "(absent without votes)"),
        }

    def describe(self) -> Iterator[Metric]:
        return iter(self._families().values())

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        f["queue"].add_metric(["generation"], self.gate.waiting)
        if self.ui_queue is not None:
            try:
                f["queue"].add_metric(["ui"], float(self.ui_queue()))
            except Exception:  # noqa: BLE001 - Gradio internals; a scrape must not fail on them
                log.debug("could not read the Gradio queue length", exc_info=True)
        f["running"].add_metric([], self.gate.running)
        f["slots"].add_metric([], self.gate.slots)
        yield from (f["queue"], f["running"], f["slots"])
        try:
            open_tickets, likes, dislikes = store_gauges(self.store)
        except Exception as exc:  # noqa: BLE001 - the store's gauges are left out while it is unreachable
            log.warning("metrics: feedback store not readable: %s", exc)
            return
        f["open"].add_metric([], open_tickets)
        f["votes"].add_metric(["like"], likes)
        f["votes"].add_metric(["dislike"], dislikes)
        yield from (f["open"], f["votes"])
        if likes + dislikes:
            f["ratio"].add_metric([], likes / (likes + dislikes))
            yield f["ratio"]


def metrics_router(metrics: Metrics) -> APIRouter:
    """``GET /metrics``: no login (Prometheus scrapes it); counts and gauges only, never conversation text."""
    router = APIRouter()

    @router.get("/metrics")
    async def scrape(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics.render, request.headers.get("accept"))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return router


def store_gauges(store: Any) -> tuple[int, int, int]:
    """(open tickets, likes, dislikes) in two small aggregate queries."""
    from sqlalchemy import case, func, select

    from serving.feedback.models import Feedback
    from serving.feedback.tickets import count_open

    with store.engine.connect() as conn:
        likes, dislikes = conn.execute(select(func.sum(case((Feedback.like.is_(True), 1), else_=0)),
                                              func.sum(case((Feedback.like.is_(False), 1), else_=0)))).one()
    return count_open(store), int(likes or 0), int(dislikes or 0)
