-- Erasure that keeps the proof. An erased event keeps its row, its seq, its `digest` (sha256 of the
-- original body) and its links; its body is replaced by the redacted body (each erasable field's value
-- replaced by "[erased]") and its raw bytes by NULL. `erased_events` keeps, per erased event, the
-- sha256 of the original raw bytes (which the link covers), the redacted body's sha256 and the fields
-- removed, so verification checks the link with the stored digests and the redacted body against its
-- own digest; the erasure event in the history (type `erasure.recorded`) commits to the same.
CREATE TABLE erased_events (
    seq             bigint  PRIMARY KEY,        -- the erased event's seq in events
    erasure_id      text    NOT NULL,           -- id of the erasure.recorded event that did it
    fields          text[]  NOT NULL,           -- the fields whose values were removed, e.g. data.reason
    redacted_digest bytea   NOT NULL,           -- sha256 of the redacted body text
    raw_digest      bytea                       -- sha256 of the original raw bytes (NULL: there were none)
);
CREATE TRIGGER erased_events_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON erased_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- The history stays append-only, but for the one UPDATE the erasure function makes.
CREATE FUNCTION events_erasure_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('casefeedback.erasing', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the event history is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER events_no_update ON events;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_erasure_only();

-- Which fields may be erased: the personal and free-text fields of the contract's payloads, and any
-- extension attribute (a top-level attribute CloudEvents does not define). Nothing a figure uses.
CREATE FUNCTION erasable_field(event_type text, field text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN field LIKE 'data.%' THEN (event_type, field) IN (
            ('complaint.received', 'data.complainant_ref'),
            ('complaint.extension_agreed', 'data.reason'),
            ('learning.action.added', 'data.description'))
        ELSE position('.' IN field) = 0 AND field NOT IN (
            'specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'data', 'dataschema')
    END
$$;

-- The one narrow path by which an event changes: its listed erasable fields' values become "[erased]",
-- nothing else; raw bytes go; the erasure is recorded. Runs as the owner (SECURITY DEFINER), so the
-- service role, which may not UPDATE the history, can erase and do nothing more.
CREATE FUNCTION erase_event(p_seq bigint, p_body text, p_fields text[], p_erasure_id text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    old_row record;
    new_body jsonb := p_body::jsonb;
    old_rest jsonb;
    new_rest jsonb;
    f text;
BEGIN
    SELECT seq, type, body::text AS body, raw INTO old_row FROM events WHERE seq = p_seq FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erase_event: no event has seq %', p_seq;
    END IF;
    IF p_fields IS NULL OR cardinality(p_fields) = 0 THEN
        RAISE EXCEPTION 'erase_event: seq % names no field to erase', p_seq;
    END IF;
    IF EXISTS (SELECT FROM erased_events WHERE seq = p_seq) THEN
        RAISE EXCEPTION 'erase_event: seq % is erased already', p_seq;
    END IF;
    old_rest := old_row.body::jsonb;
    new_rest := new_body;
    FOREACH f IN ARRAY p_fields LOOP
        IF NOT erasable_field(old_row.type, f) THEN
            RAISE EXCEPTION 'erase_event: field % of % is not erasable', f, old_row.type;
        END IF;
        IF (old_rest #> string_to_array(f, '.')) IS NULL
           OR (new_body #> string_to_array(f, '.')) IS DISTINCT FROM to_jsonb('[erased]'::text) THEN
            RAISE EXCEPTION 'erase_event: field % of seq % must be present and become "[erased]"', f, p_seq;
        END IF;
        old_rest := old_rest #- string_to_array(f, '.');
        new_rest := new_rest #- string_to_array(f, '.');
    END LOOP;
    IF old_rest IS DISTINCT FROM new_rest THEN
        RAISE EXCEPTION 'erase_event: the body of seq % may differ only in the fields erased', p_seq;
    END IF;
    INSERT INTO erased_events (seq, erasure_id, fields, redacted_digest, raw_digest)
    VALUES (p_seq, p_erasure_id, p_fields, sha256(convert_to(p_body, 'UTF8')),
            CASE WHEN old_row.raw IS NULL THEN NULL ELSE sha256(old_row.raw) END);
    PERFORM set_config('casefeedback.erasing', 'on', true);
    UPDATE events SET body = p_body::json, raw = NULL WHERE seq = p_seq;
    PERFORM set_config('casefeedback.erasing', 'off', true);
END $$;
REVOKE ALL ON FUNCTION erase_event(bigint, text, text[], text) FROM PUBLIC;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'casefeedback_service')
       OR current_user = 'casefeedback_service' THEN
        RETURN;
    END IF;
    REVOKE INSERT, UPDATE, DELETE ON erased_events FROM casefeedback_service;
    GRANT SELECT ON erased_events TO casefeedback_service;
    GRANT EXECUTE ON FUNCTION erase_event(bigint, text, text[], text) TO casefeedback_service;
END $$;
