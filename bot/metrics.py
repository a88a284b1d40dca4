"""Prometheus metrics of the process, on a registry of their own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Every metric the bot exports. One instance per application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "voicebot_turns_total",
            "Turns handled, by platform, model, kind and final status.",
            ["platform", "model", "kind", "status"],
            registry=self.registry,
        )
        self.model_errors = Counter(
            "voicebot_model_errors_total",
            "Errors from the model service, by error class.",
            ["error"],
            registry=self.registry,
        )
        self.audio_errors = Counter(
            "voicebot_audio_errors_total",
            "Audio inputs refused, by error class.",
            ["error"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voicebot_audio_seconds_sent_total",
            "Seconds of audio sent to the model.",
            ["model"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "voicebot_tokens_total",
            "Tokens reported by the model service.",
            ["model", "direction"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "voicebot_time_to_first_token_seconds",
            "From the user's message to the first reply text.",
            ["model"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
            registry=self.registry,
        )
        self.turn_duration = Histogram(
            "voicebot_turn_duration_seconds",
            "From the user's message to the finished reply.",
            ["model"],
            buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120),
            registry=self.registry,
        )
        self.transcode = Histogram(
            "voicebot_transcode_seconds",
            "Audio conversion time per input.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "voicebot_turns_in_flight", "Turns being answered now.", registry=self.registry
        )
        self.platform_errors = Counter(
            "voicebot_platform_errors_total",
            "Errors from chat platform APIs, by platform and kind.",
            ["platform", "error"],
            registry=self.registry,
        )
        self.duplicate_events = Counter(
            "voicebot_duplicate_events_total",
            "Platform events skipped because they were already processed.",
            ["platform"],
            registry=self.registry,
        )
        self.transcripts = Counter(
            "voicebot_transcripts_total",
            "Transcript requests (button presses and automatic ones), by platform and outcome "
            "(transcribed, cached, failed, interrupted).",
            ["platform", "outcome"],
            registry=self.registry,
        )

        self.undelivered = Counter(
            "voicebot_replies_undelivered_total",
            "Final reply texts the platform did not confirm within DELIVERY_TIMEOUT.",
            ["platform"],
            registry=self.registry,
        )
        self.delivered_late = Counter(
            "voicebot_replies_delivered_late_total",
            "Undelivered replies delivered later, at the chat's next message.",
            ["platform"],
            registry=self.registry,
        )

        # --- the turn queue (bot.queue)
        self.queue_depth = Gauge(
            "voicebot_queue_depth",
            "Accepted jobs not started yet (all replicas; sampled).",
            registry=self.registry,
        )
        self.jobs_running = Gauge(
            "voicebot_jobs_running", "Jobs this process runs now.", registry=self.registry
        )
        self.job_latency = Histogram(
            "voicebot_job_latency_seconds",
            "From an event's acceptance to the start of its job.",
            ["backend"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.jobs = Counter(
            "voicebot_jobs_total",
            "Jobs run by this process, by outcome (done, retried, given_up, interrupted).",
            ["outcome"],
            registry=self.registry,
        )
        self.stalled_recovered = Counter(
            "voicebot_stalled_jobs_recovered_total",
            "Jobs a dead process left running that were queued again.",
            registry=self.registry,
        )
        self.leader_changes = Counter(
            "voicebot_leader_changes_total",
            "Times this process became or stopped being the Telegram polling leader.",
            ["change"],
            registry=self.registry,
        )
        self.is_leader = Gauge(
            "voicebot_polling_leader",
            "1 while this process is the one polling Telegram.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
