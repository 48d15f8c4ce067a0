"""The ``http`` trigger: ``POST /events/<name>`` turns a JSON body into events.

::

    trigger:
      http:
        path: /events/loans      # the endpoint; rules with the same path share it
        schema: {...}            # optional JSON Schema every event must satisfy
        max_body: 1048576        # bytes (default: server.max_body); larger is refused with 413

The body is one JSON object (one event), a JSON array of objects, or NDJSON (one object per
line). Answers: 202 ``{"events": n, "notifications": [ids…]}`` (``errors`` lists events a rule
could not render and events nested deeper than ``MAX_DEPTH`` levels, each refused alone;
``duplicates`` the skipped notification of each event whose dedupe key was seen before;
``?explain=1`` adds every rule's result, e.g. why it skipped); 400 for a body that is not JSON
objects or breaks the schema (every violation listed); 401 without the right
``Authorization: Bearer`` token; 404 for an unknown path; 413 for a body over ``max_body``;
422 for an ``Idempotency-Key`` used before with another body.

With an ``Idempotency-Key`` header the first answer is kept in the ledger (progress key
``http:<path>:idem:<key>``, committed in the same transaction as the notifications, with the
SHA-256 of the events): the same key with the same events returns that answer and creates
nothing; with other events it is refused with 422.

Every refusal (401, 400, 404, 413, 422, an event refused alone or that a rule could not render)
is counted in ``nextstep_events_refused_total{trigger, reason}`` and logged at WARNING; a
client that hangs up mid-body is one INFO line.
"""

from nextstep.adapters.triggers.http.body import MAX_DEPTH, BadRequest
from nextstep.adapters.triggers.http.routes import events_app, events_routes
from nextstep.adapters.triggers.http.settings import (
    CONFIG_SCHEMA,
    PREFIX,
    event_path,
    schema_fields,
)
from nextstep.adapters.triggers.http.trigger import MAX_KEY_LENGTH, HttpTrigger

__all__ = [
    "CONFIG_SCHEMA",
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "PREFIX",
    "BadRequest",
    "HttpTrigger",
    "event_path",
    "events_app",
    "events_routes",
    "schema_fields",
]
