"""Prometheus metrics, one registry for the process; every layer increments these objects."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

NOTIFICATIONS = Counter(
    "nextstep_notifications",
    "Notifications that reached a state, by rule and state",
    ["rule", "state"],
    registry=REGISTRY,
)
PROVIDER_ANSWERS = Counter(
    "nextstep_provider_answers",
    "Send attempts by channel and classified outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
RETRIES = Counter("nextstep_retries", "Send attempts scheduled again", ["rule"], registry=REGISTRY)
FALLBACKS = Counter(
    "nextstep_fallbacks", "Fallback notifications created", ["rule", "on"], registry=REGISTRY
)
ACKS = Counter("nextstep_acks", "Delivery acks received by status", ["status"], registry=REGISTRY)
WEBHOOK_IGNORED = Counter(
    "nextstep_webhook_ignored",
    "Malformed parts of provider webhook bodies that were ignored, by channel type and part",
    ["channel_type", "part"],
    registry=REGISTRY,
)
SEND_LATENCY = Histogram(
    "nextstep_send_latency_seconds",
    "Time of one provider request",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
EVENT_TO_SEND = Histogram(
    "nextstep_event_to_send_seconds",
    "Time from an event's notification being queued to its first send attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
    registry=REGISTRY,
)
IN_FLIGHT_TARGET = Gauge(
    "nextstep_send_in_flight_target",
    "Requests a channel allows awaiting an answer now (rate x smoothed latency, capped)",
    ["channel"],
    registry=REGISTRY,
)
SMOOTHED_LATENCY = Gauge(
    "nextstep_send_latency_smoothed_seconds",
    "Moving average of a channel's request latency, from which its in-flight target follows",
    ["channel"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("nextstep_queue_depth", "Notifications queued and due", registry=REGISTRY)
IN_DOUBT_RESOLVED = Counter(
    "nextstep_in_doubt_resolved_total",
    "In-doubt notifications looked up in the provider's history: found (sent), missing from a "
    "complete history (queued again), or left for a person (kept)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CIRCUIT_OPEN = Gauge(
    "nextstep_circuit_open", "1 when a channel's circuit is open", ["channel"], registry=REGISTRY
)
CHANNEL_PAUSED_UNTIL = Gauge(
    "nextstep_channel_paused_until_seconds",
    "When a channel's rate-limit pause (a provider's Retry-After, capped) ends; Unix time",
    ["channel"],
    registry=REGISTRY,
)
TRIGGER_UP = Gauge(
    "nextstep_trigger_up", "1 when a trigger is running", ["trigger"], registry=REGISTRY
)
RELOAD_OK = Gauge(
    "nextstep_config_last_reload_successful",
    "1 if the last configuration reload succeeded",
    registry=REGISTRY,
)
RELOAD_TIME = Gauge(
    "nextstep_config_last_reload_success_timestamp_seconds",
    "Time of the last successful configuration reload",
    registry=REGISTRY,
)
EVENTS_REFUSED = Counter(
    "nextstep_events_refused",
    "Requests, events, rows or files a trigger refused, by trigger (source) and reason",
    ["trigger", "reason"],
    registry=REGISTRY,
)
OPTED_OUT = Counter(
    "nextstep_optout_skipped",
    "Notifications skipped because their recipient opted out, by rule",
    ["rule"],
    registry=REGISTRY,
)
OPTOUTS = Counter(
    "nextstep_optouts",
    "Opt-outs added or removed (action), by how they came (keyword, cli, api, import)",
    ["action", "how"],
    registry=REGISTRY,
)
INBOUND = Counter(
    "nextstep_inbound_messages",
    "Messages people sent that were kept, by channel and message type",
    ["channel", "type"],
    registry=REGISTRY,
)
INBOUND_DUPLICATES = Counter(
    "nextstep_inbound_duplicates",
    "Inbound messages received again (a provider retry) and not kept twice, by channel",
    ["channel"],
    registry=REGISTRY,
)
PRUNED = Counter(
    "nextstep_pruned_rows",
    "Ledger rows forgotten by retention (notifications with their history, acks)",
    ["table"],
    registry=REGISTRY,
)
