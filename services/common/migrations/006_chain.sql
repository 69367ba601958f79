-- The chain's link covers every stored column a figure depends on (seq, id, subject, version, type,
-- source, time, recorded_at, raw, body digest); links recorded before keep the original formula (seq,
-- id, body digest, raw). `full_from` is the first seq hashed with the full link, so verification
-- chooses the formula by seq. The head's row lock keeps an append from slipping in meanwhile.
CREATE TABLE chain_format (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    full_from bigint  NOT NULL
);
INSERT INTO chain_format (full_from) SELECT seq + 1 FROM chain_head FOR UPDATE;

-- The boundary is part of what verification trusts: as append-only as the history itself.
CREATE TRIGGER chain_format_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON chain_format
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- TRUNCATE bypasses row triggers and the UPDATE/DELETE statement trigger: refuse it too.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
