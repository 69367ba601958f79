-- The event-sourced history: append-only, one global sequence, a per-subject version, a hash chain.
CREATE TABLE events (
    seq          bigint      PRIMARY KEY,           -- global order in which the history accepted events
    id           text        NOT NULL UNIQUE,       -- CloudEvents id: the idempotency key
    subject      text        NOT NULL,
    version      integer     NOT NULL,              -- 1, 2, ... per subject: optimistic concurrency
    type         text        NOT NULL,
    source       text        NOT NULL,
    time         timestamptz NOT NULL,              -- event time (when it happened in the world)
    recorded_at  timestamptz NOT NULL,              -- when the history accepted it
    raw          bytea,                             -- the original record value, byte for byte (inbound only)
    body         json        NOT NULL,              -- the normalised event as canonical JSON text, kept verbatim
                                                    -- (json, not jsonb) so its digest is checked without re-serialising
    digest       bytea       NOT NULL,              -- sha256 of the body text: tells a conflict from a duplicate
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,              -- sha256(prev_hash, seq, id, digest, sha256(raw))
    UNIQUE (subject, version)
);
CREATE INDEX events_subject ON events (subject, version);
CREATE INDEX events_type_time ON events (type, time);

-- The head of the chain; its row lock serialises appends so seq order equals commit order.
CREATE TABLE chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO chain_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- The history is append-only: refuse any change through the system's own roles.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event history is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- How far the relay has published the history to casefeedback.events.
CREATE TABLE relay_position (
    name text   PRIMARY KEY,
    seq  bigint NOT NULL
);

-- How far each consumer group has applied each partition of casefeedback.events, by history seq;
-- written in the same transaction as the projection, so a redelivered event is applied once.
CREATE TABLE consumer_positions (
    grp       text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    seq       bigint  NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
