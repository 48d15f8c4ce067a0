"""The ledger's schema, as one ordered list of named migrations with the SQL of each dialect.

Each migration runs once, in its own transaction together with the row that records it in
``migrations`` (the backends' ``migrate``). Never edit or reorder an entry that has shipped:
append a new :class:`Migration` at the end, with the SQL of every dialect. JSON columns hold
UTF-8 JSON text in both (:mod:`nextstep.engine.ledger.codec`).

PostgreSQL's SQL is SQLite's with its own types: ``bigserial`` ids (``notifications_id_seq``
is what a batch reserves its ids from), ``double precision`` times, ``text`` JSON. Partial
indexes are the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One named step of the schema, in each dialect."""

    name: str
    sqlite: str
    postgres: str


SQLITE: list[tuple[str, str]] = [
    (
        "0001_notifications",
        """
        CREATE TABLE notifications (
            id              INTEGER PRIMARY KEY,
            rule_id         TEXT NOT NULL,
            rule_version    TEXT NOT NULL,
            channel         TEXT NOT NULL,
            recipient       TEXT NOT NULL,
            fields          TEXT NOT NULL,          -- JSON: the rendered send block
            event           TEXT NOT NULL,          -- JSON: the event data
            trigger         TEXT NOT NULL,          -- JSON: trigger metadata
            state           TEXT NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      REAL NOT NULL,
            updated_at      REAL NOT NULL,
            next_attempt_at REAL,
            dedupe_key      TEXT,
            duplicate_of    INTEGER REFERENCES notifications(id),
            provider_id     TEXT,
            expect          TEXT NOT NULL DEFAULT 'sent',
            within          REAL,
            deadline_at     REAL,
            valid_until     REAL,
            supersede_key   TEXT,
            parent_id       INTEGER REFERENCES notifications(id),
            fallback_step   INTEGER,
            reason          TEXT NOT NULL DEFAULT '',
            failure_class   TEXT
        );
        -- Dedupe is this constraint; a duplicate is kept as a skipped row pointing at the first.
        CREATE UNIQUE INDEX notifications_dedupe
            ON notifications(rule_id, dedupe_key) WHERE duplicate_of IS NULL;
        CREATE INDEX notifications_due
            ON notifications(next_attempt_at, id) WHERE state = 'queued';
        CREATE INDEX notifications_valid_until
            ON notifications(valid_until) WHERE state = 'queued' AND valid_until IS NOT NULL;
        CREATE INDEX notifications_provider
            ON notifications(provider_id) WHERE provider_id IS NOT NULL;
        CREATE INDEX notifications_supersede
            ON notifications(rule_id, supersede_key) WHERE supersede_key IS NOT NULL;
        CREATE INDEX notifications_state ON notifications(state, id);
        CREATE INDEX notifications_rule_created ON notifications(rule_id, created_at);
        CREATE INDEX notifications_created ON notifications(created_at);
        """,
    ),
    (
        "0002_history",
        """
        CREATE TABLE history (
            id              INTEGER PRIMARY KEY,
            notification_id INTEGER NOT NULL REFERENCES notifications(id),
            at              REAL NOT NULL,
            kind            TEXT NOT NULL,          -- created | attempt | ack | state | ...
            detail          TEXT NOT NULL           -- JSON
        );
        CREATE INDEX history_notification ON history(notification_id, id);
        """,
    ),
    (
        "0003_rule_versions_progress",
        """
        CREATE TABLE rule_versions (
            rule_id     TEXT NOT NULL,
            version     TEXT NOT NULL,
            definition  TEXT NOT NULL,              -- JSON
            PRIMARY KEY (rule_id, version)
        );
        CREATE TABLE progress (
            key     TEXT PRIMARY KEY,
            value   TEXT NOT NULL
        );
        """,
    ),
    (
        "0004_acks",
        """
        CREATE TABLE acks (
            id          INTEGER PRIMARY KEY,
            provider_id TEXT NOT NULL,
            status      TEXT NOT NULL,
            payload     TEXT NOT NULL,              -- JSON: the ack as received
            received_at REAL NOT NULL,
            applied     INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX acks_provider ON acks(provider_id);
        CREATE INDEX acks_unapplied ON acks(id) WHERE applied = 0;
        """,
    ),
    (
        "0005_status_settle_poll",
        """
        -- settled_at: the fallback of a failed/expired notification has been decided (once).
        ALTER TABLE notifications ADD COLUMN settled_at REAL;
        -- polled_at: when the channel was last asked about this message's status.
        ALTER TABLE notifications ADD COLUMN polled_at REAL;
        UPDATE notifications SET settled_at = updated_at WHERE state IN ('failed', 'expired');
        CREATE INDEX notifications_unsettled ON notifications(id)
            WHERE state IN ('failed', 'expired') AND settled_at IS NULL;
        CREATE INDEX notifications_deadline ON notifications(deadline_at)
            WHERE deadline_at IS NOT NULL AND state IN ('sent', 'delivered');
        CREATE INDEX notifications_sent ON notifications(updated_at) WHERE state = 'sent';
        CREATE INDEX acks_pending_received ON acks(received_at) WHERE applied = 0;
        """,
    ),
    (
        "0006_optouts",
        """
        -- Recipients who asked for no more messages, through one channel or every one ('*').
        CREATE TABLE optouts (
            recipient   TEXT NOT NULL,              -- international digits
            channel     TEXT NOT NULL,              -- a channel name, or '*': every channel
            at          REAL NOT NULL,
            how         TEXT NOT NULL,              -- keyword | cli | api | import
            note        TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (recipient, channel)
        );
        -- The opt-out channels that stop a notification, as ',a,b,': NULL is its own
        -- channel's and '*'; '' is none (not a message to the recipient).
        ALTER TABLE notifications ADD COLUMN optout_scopes TEXT;
        CREATE INDEX notifications_queued_recipient
            ON notifications(recipient) WHERE state = 'queued';
        -- No notification an opt-out stops goes back to queued (a retry, a release, a lease
        -- given back): it is skipped instead, in the same statement.
        CREATE TRIGGER notifications_optout_guard AFTER UPDATE OF state ON notifications
        WHEN NEW.state = 'queued' AND OLD.state <> 'queued' AND NEW.recipient <> ''
            AND EXISTS (
                SELECT 1 FROM optouts o WHERE o.recipient = NEW.recipient AND (
                    (NEW.optout_scopes IS NULL AND o.channel IN ('*', NEW.channel))
                    OR instr(NEW.optout_scopes, ',' || o.channel || ',') > 0))
        BEGIN
            UPDATE notifications SET state = 'skipped', reason = 'opted out',
                next_attempt_at = NULL WHERE id = NEW.id;
            INSERT INTO history (notification_id, at, kind, detail)
                VALUES (NEW.id, NEW.updated_at, 'state',
                        '{"state":"skipped","reason":"opted out"}');
        END;
        """,
    ),
    (
        "0007_inbound",
        """
        -- Messages people sent us; ids only grow (AUTOINCREMENT: pruning never reuses one),
        -- so the inbound trigger's cursor never misses one.
        CREATE TABLE inbound_messages (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            channel     TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            sender      TEXT NOT NULL,
            name        TEXT NOT NULL DEFAULT '',
            type        TEXT NOT NULL,
            text        TEXT NOT NULL,
            sent_at     REAL NOT NULL,
            received_at REAL NOT NULL,
            quoted_id   TEXT,
            reply_to    INTEGER,                    -- the notification it replied to
            keyword     TEXT,                       -- stop | start
            UNIQUE (channel, provider_id)
        );
        CREATE INDEX inbound_received ON inbound_messages(received_at);
        """,
    ),
]
POSTGRES: dict[str, str] = {
    "0001_notifications": """
        CREATE TABLE notifications (
            id              bigserial PRIMARY KEY,
            rule_id         text NOT NULL,
            rule_version    text NOT NULL,
            channel         text NOT NULL,
            recipient       text NOT NULL,
            fields          text NOT NULL,
            event           text NOT NULL,
            trigger         text NOT NULL,
            state           text NOT NULL,
            attempts        integer NOT NULL DEFAULT 0,
            created_at      double precision NOT NULL,
            updated_at      double precision NOT NULL,
            next_attempt_at double precision,
            dedupe_key      text,
            duplicate_of    bigint REFERENCES notifications(id),
            provider_id     text,
            expect          text NOT NULL DEFAULT 'sent',
            within          double precision,
            deadline_at     double precision,
            valid_until     double precision,
            supersede_key   text,
            parent_id       bigint REFERENCES notifications(id),
            fallback_step   integer,
            reason          text NOT NULL DEFAULT '',
            failure_class   text
        );
        CREATE UNIQUE INDEX notifications_dedupe
            ON notifications(rule_id, dedupe_key) WHERE duplicate_of IS NULL;
        CREATE INDEX notifications_due
            ON notifications(next_attempt_at, id) WHERE state = 'queued';
        CREATE INDEX notifications_valid_until
            ON notifications(valid_until) WHERE state = 'queued' AND valid_until IS NOT NULL;
        CREATE INDEX notifications_provider
            ON notifications(provider_id) WHERE provider_id IS NOT NULL;
        CREATE INDEX notifications_supersede
            ON notifications(rule_id, supersede_key) WHERE supersede_key IS NOT NULL;
        CREATE INDEX notifications_state ON notifications(state, id);
        CREATE INDEX notifications_rule_created ON notifications(rule_id, created_at);
        CREATE INDEX notifications_created ON notifications(created_at);
        """,
    "0002_history": """
        CREATE TABLE history (
            id              bigserial PRIMARY KEY,
            notification_id bigint NOT NULL REFERENCES notifications(id),
            at              double precision NOT NULL,
            kind            text NOT NULL,
            detail          text NOT NULL
        );
        CREATE INDEX history_notification ON history(notification_id, id);
        """,
    "0003_rule_versions_progress": """
        CREATE TABLE rule_versions (
            rule_id     text NOT NULL,
            version     text NOT NULL,
            definition  text NOT NULL,
            PRIMARY KEY (rule_id, version)
        );
        CREATE TABLE progress (
            key     text PRIMARY KEY,
            value   text NOT NULL
        );
        """,
    "0004_acks": """
        CREATE TABLE acks (
            id          bigserial PRIMARY KEY,
            provider_id text NOT NULL,
            status      text NOT NULL,
            payload     text NOT NULL,
            received_at double precision NOT NULL,
            applied     integer NOT NULL DEFAULT 0
        );
        CREATE INDEX acks_provider ON acks(provider_id);
        CREATE INDEX acks_unapplied ON acks(id) WHERE applied = 0;
        """,
    "0005_status_settle_poll": """
        ALTER TABLE notifications ADD COLUMN settled_at double precision;
        ALTER TABLE notifications ADD COLUMN polled_at double precision;
        UPDATE notifications SET settled_at = updated_at WHERE state IN ('failed', 'expired');
        CREATE INDEX notifications_unsettled ON notifications(id)
            WHERE state IN ('failed', 'expired') AND settled_at IS NULL;
        CREATE INDEX notifications_deadline ON notifications(deadline_at)
            WHERE deadline_at IS NOT NULL AND state IN ('sent', 'delivered');
        CREATE INDEX notifications_sent ON notifications(updated_at) WHERE state = 'sent';
        CREATE INDEX acks_pending_received ON acks(received_at) WHERE applied = 0;
        """,
    "0006_optouts": """
        CREATE TABLE optouts (
            recipient   text NOT NULL,
            channel     text NOT NULL,
            at          double precision NOT NULL,
            how         text NOT NULL,
            note        text NOT NULL DEFAULT '',
            PRIMARY KEY (recipient, channel)
        );
        ALTER TABLE notifications ADD COLUMN optout_scopes text;
        CREATE INDEX notifications_queued_recipient
            ON notifications(recipient) WHERE state = 'queued';
        -- The opt-out lock (shared here, as by every write transaction; exclusive while
        -- opt-outs are added) orders this check after any opt-out being committed.
        CREATE FUNCTION nextstep_optout_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(1853253748, 1);
            IF EXISTS (
                SELECT 1 FROM optouts o WHERE o.recipient = NEW.recipient AND (
                    (NEW.optout_scopes IS NULL AND o.channel IN ('*', NEW.channel))
                    OR strpos(NEW.optout_scopes, ',' || o.channel || ',') > 0))
            THEN
                NEW.state := 'skipped';
                NEW.reason := 'opted out';
                NEW.next_attempt_at := NULL;
                INSERT INTO history (notification_id, at, kind, detail)
                    VALUES (NEW.id, NEW.updated_at, 'state',
                            '{"state":"skipped","reason":"opted out"}');
            END IF;
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER notifications_optout_guard BEFORE UPDATE OF state ON notifications
            FOR EACH ROW
            WHEN (NEW.state = 'queued' AND OLD.state <> 'queued' AND NEW.recipient <> '')
            EXECUTE FUNCTION nextstep_optout_guard();
        """,
    "0007_inbound": """
        CREATE TABLE inbound_messages (
            id          bigserial PRIMARY KEY,
            channel     text NOT NULL,
            provider_id text NOT NULL,
            sender      text NOT NULL,
            name        text NOT NULL DEFAULT '',
            type        text NOT NULL,
            text        text NOT NULL,
            sent_at     double precision NOT NULL,
            received_at double precision NOT NULL,
            quoted_id   text,
            reply_to    bigint,
            keyword     text,
            UNIQUE (channel, provider_id)
        );
        CREATE INDEX inbound_received ON inbound_messages(received_at);
        """,
}

# Every backend applies these names in this order (a test checks both dialects have each).
MIGRATIONS: list[Migration] = [Migration(name, sql, POSTGRES[name]) for name, sql in SQLITE]

# The web console's reads (engine/ledger/*/console.py) at a million rows. Overview and the list
# by rule: covering (rule, created, state), which replaces (rule, created), serving its every
# use; the list by state, newest first; by a recipient's last digits (4 at least are asked
# for); skip reasons by rule over a window without reading the rows; by dedupe key, whatever
# the rule.
MIGRATIONS.append(
    Migration(
        "0008_console_reads",
        sqlite="""
        CREATE INDEX notifications_rule_created_state
            ON notifications(rule_id, created_at, state);
        DROP INDEX notifications_rule_created;
        CREATE INDEX notifications_state_created ON notifications(state, created_at);
        CREATE INDEX notifications_recipient_tail
            ON notifications(substr(recipient, -4), created_at);
        CREATE INDEX notifications_skipped
            ON notifications(created_at, rule_id, reason) WHERE state = 'skipped';
        CREATE INDEX notifications_dedupe_key
            ON notifications(dedupe_key) WHERE dedupe_key IS NOT NULL;
        """,
        # The same, with PostgreSQL's right() for the last digits.
        postgres="""
        CREATE INDEX notifications_rule_created_state
            ON notifications(rule_id, created_at, state);
        DROP INDEX notifications_rule_created;
        CREATE INDEX notifications_state_created ON notifications(state, created_at);
        CREATE INDEX notifications_recipient_tail
            ON notifications(right(recipient, 4), created_at);
        CREATE INDEX notifications_skipped
            ON notifications(created_at, rule_id, reason) WHERE state = 'skipped';
        CREATE INDEX notifications_dedupe_key
            ON notifications(dedupe_key) WHERE dedupe_key IS NOT NULL;
        """,
    )
)

# Several workers on one ledger (docs/scaling.md, "Leases and takeover"). A leased row carries
# its owner and the time its lease runs out (renewed while held); ``marked_at`` is set just
# before its request is written, so that after a crash only marked rows are in doubt and the
# others are simply due again. ``workers`` is each running worker's heartbeat and what it holds;
# ``recipient_slots`` keeps the 6-second pair rate across workers (PostgreSQL; claimed with
# the marks).
# Rows left ``sending`` by a version without leases are taken as marked, with an expired lease:
# the next start recovers them as before.
_WORKERS_TABLE = """
        CREATE TABLE workers (
            id         TEXT PRIMARY KEY,
            host       TEXT NOT NULL,
            pid        INTEGER NOT NULL,
            started_at {real} NOT NULL,
            last_seen  {real} NOT NULL,
            lease      {real} NOT NULL,
            holds      TEXT NOT NULL DEFAULT '{{}}',
            stopped_at {real}
        );
        -- The last send to each recipient by any worker, for the pair rate across workers.
        CREATE TABLE recipient_slots (
            channel    TEXT NOT NULL,
            recipient  TEXT NOT NULL,
            last_at    {real} NOT NULL,
            PRIMARY KEY (channel, recipient)
        );
"""
_LEASE_COLUMNS = """
        ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
        ALTER TABLE notifications ADD COLUMN lease_until {real};
        ALTER TABLE notifications ADD COLUMN marked_at {real};
        UPDATE notifications SET marked_at = updated_at, lease_until = 0 WHERE state = 'sending';
        CREATE INDEX notifications_leases ON notifications(lease_until) WHERE state = 'sending';
"""
MIGRATIONS.append(
    Migration(
        "0009_workers",
        sqlite=_LEASE_COLUMNS.format(real="REAL") + _WORKERS_TABLE.format(real="REAL"),
        postgres=_LEASE_COLUMNS.format(real="double precision")
        + _WORKERS_TABLE.format(real="double precision"),
    )
)

# Retention (engine/ledger/retention.py): what points at a notification is found by index, so
# a batch of candidates costs as many probes, not a scan each (partial: only the few rows that
# are duplicates or fallbacks pay); acks that matched are found by age like the unknown ones
# (acks_pending_received). `nextstep status` counts the last 24 h of every rule from the
# covering (created, rule, state), which replaces (created) in its every use: read in the
# window only, whatever the ledger's size (the rule-first index made SQLite, without
# statistics, scan all of it). SQLite's auto_vacuum can only be set on a new file (store.py).
MIGRATIONS.append(
    Migration(
        "0010_retention",
        sqlite="""
        CREATE INDEX notifications_duplicate_of
            ON notifications(duplicate_of) WHERE duplicate_of IS NOT NULL;
        CREATE INDEX notifications_parent ON notifications(parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX acks_applied_received ON acks(received_at) WHERE applied = 1;
        CREATE INDEX notifications_created_rule_state
            ON notifications(created_at, rule_id, state);
        DROP INDEX notifications_created;
        """,
        postgres="""
        CREATE INDEX notifications_duplicate_of
            ON notifications(duplicate_of) WHERE duplicate_of IS NOT NULL;
        CREATE INDEX notifications_parent ON notifications(parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX acks_applied_received ON acks(received_at) WHERE applied = 1;
        CREATE INDEX notifications_created_rule_state
            ON notifications(created_at, rule_id, state);
        DROP INDEX notifications_created;
        """,
    )
)

# Footprint (engine/ledger/packing.py, docs/internals.md "Footprint"): a notification's fields,
# event and trigger as one deflate stream primed with a sample of its rule version, kept once
# in ``packing``; the JSON columns of such a row hold ''. Rows written before keep their JSON
# (``packed`` NULL). Indexes that another one serves are dropped: the dedupe constraint, key
# first, also finds a key whatever the rule (the few duplicates by their own partial index);
# (state, created_at) serves what (state, id) did; the last digits without the time (a tail's
# rows are few, sorted after); queued rows of a recipient by the tail (an opt-out, rare); the
# rule-first index without the state (counts read the covering created-first one; a rule's
# list reads its rows anyway). SQLite's due index without the id: every index entry ends with
# the rowid, so (next_attempt_at) is already in (next_attempt_at, id) order.
_FOOTPRINT_INDEXES = """
        DROP INDEX notifications_dedupe;
        CREATE UNIQUE INDEX notifications_dedupe
            ON notifications(dedupe_key, rule_id) WHERE duplicate_of IS NULL;
        DROP INDEX notifications_dedupe_key;
        CREATE INDEX notifications_duplicates
            ON notifications(dedupe_key) WHERE duplicate_of IS NOT NULL;
        DROP INDEX notifications_state;
        DROP INDEX notifications_queued_recipient;
        DROP INDEX notifications_recipient_tail;
        CREATE INDEX notifications_recipient_tail ON notifications({tail});
        DROP INDEX notifications_rule_created_state;
        CREATE INDEX notifications_rule_created ON notifications(rule_id, created_at);
"""
MIGRATIONS.append(
    Migration(
        "0011_footprint",
        sqlite="""
        ALTER TABLE notifications ADD COLUMN packed BLOB;
        CREATE TABLE packing (
            rule_id      TEXT NOT NULL,
            rule_version TEXT NOT NULL,
            sample       BLOB NOT NULL,
            PRIMARY KEY (rule_id, rule_version)
        );
        """
        + _FOOTPRINT_INDEXES.format(tail="substr(recipient, -4)")
        + """
        DROP INDEX notifications_due;
        CREATE INDEX notifications_due ON notifications(next_attempt_at) WHERE state = 'queued';
        """,
        postgres="""
        ALTER TABLE notifications ADD COLUMN packed bytea;
        CREATE TABLE packing (
            rule_id      text NOT NULL,
            rule_version text NOT NULL,
            sample       bytea NOT NULL,
            PRIMARY KEY (rule_id, rule_version)
        );
        """
        + _FOOTPRINT_INDEXES.format(tail="right(recipient, 4)"),
    )
)
