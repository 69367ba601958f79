-- Intake's hold: valid events that wait for their predecessor (e.g. an acknowledgement whose case
-- the history does not know yet). Holding them here lets intake commit the Kafka offset; a held
-- event is appended right after its predecessor, or dead-lettered as out_of_order at hold_until.
CREATE TABLE intake_held (
    held_seq    bigserial   PRIMARY KEY,            -- arrival order at intake
    id          text        NOT NULL UNIQUE,        -- CloudEvents id (de-duplicates redeliveries)
    awaits      text        NOT NULL,               -- predecessor key, e.g. 'complaint.received/<case>'
    digest      bytea       NOT NULL,               -- sha256 of the canonical normalised body
    body        text        NOT NULL,               -- the normalised event (JSON)
    raw         bytea       NOT NULL,               -- the original record value, byte for byte
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    record_time timestamptz NOT NULL,               -- the record's broker timestamp (for the delay metric)
    held_at     timestamptz NOT NULL,
    hold_until  timestamptz NOT NULL                -- held_at + the grace time (processing time)
);
CREATE INDEX intake_held_awaits ON intake_held (awaits, held_seq);
CREATE INDEX intake_held_until ON intake_held (hold_until);

-- events_subject duplicated the index of UNIQUE (subject, version); one fewer index per append.
DROP INDEX IF EXISTS events_subject;
