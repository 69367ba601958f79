-- One database role per job, so that a credential taken from one worker writes only what that worker
-- writes. Whoever sets up the server creates the login roles (deploy/postgres/init-roles.sh, the embedded
-- server of `casefeedback up`); these grants are applied by the schema owner. A role that does not exist
-- is left out (one role for everything: nothing to grant).
--
--   casefeedback_intake      appends inbound types with a source not the project's; intake_held, intake_cases,
--                            procedure_documents (the document each case is received under)
--   casefeedback_escalation  appends deadline.* as casefeedback/escalation; escalation_cases, its deadlines rows,
--                            procedure_documents
--   casefeedback_learning    appends deadline.* and learning.stage.* as casefeedback/learning; learning_cases,
--                            its deadlines rows, procedure_documents
--   casefeedback_metrics     metrics_buckets, metrics_surveys; never the history
--   casefeedback_relay       relay_position; never the history
--   casefeedback_erasure     erase_event, erasure.recorded as casefeedback/audit, the held copies it redacts
--   casefeedback_reader      reads (report, replay, history, cases)
--   casefeedback_service     every job above at once: a single-role deployment (DATABASE_URL alone)
-- Every role reads every table; escalation, learning and metrics write their consumer group's positions.
-- A table of a later migration is readable by every role; its migration grants whoever writes it.

-- Which jobs each role does; the triggers below read it, so a refusal names what the role is for.
CREATE TABLE role_jobs (
    role name NOT NULL,
    job  text NOT NULL,
    PRIMARY KEY (role, job)
);
INSERT INTO role_jobs (role, job) VALUES
    ('casefeedback_intake', 'intake'), ('casefeedback_escalation', 'escalation'),
    ('casefeedback_learning', 'learning'), ('casefeedback_metrics', 'metrics'),
    ('casefeedback_relay', 'relay'), ('casefeedback_erasure', 'erasure');
INSERT INTO role_jobs (role, job) SELECT 'casefeedback_service', job FROM role_jobs;

-- What each job may append to the history: a type (or, ending in '*', a prefix of types) under a source
-- ('' is any source that is not the project's own: `casefeedback` or `casefeedback/...`, in any case).
CREATE TABLE event_writers (
    job    text NOT NULL,
    source text NOT NULL,
    type   text NOT NULL,
    PRIMARY KEY (job, source, type)
);
INSERT INTO event_writers (job, source, type) VALUES  -- intake: the inbound types (schemas/registry.py)
    ('intake', '', 'complaint.received'), ('intake', '', 'complaint.acknowledged'),
    ('intake', '', 'complaint.extension_agreed'), ('intake', '', 'complaint.responded'),
    ('intake', '', 'complaint.escalated'), ('intake', '', 'complaint.withdrawn'),
    ('intake', '', 'complaint.closed'), ('intake', '', 'complaint.suspended'),
    ('intake', '', 'complaint.resumed'), ('intake', '', 'compliment.received'),
    ('intake', '', 'survey.defined'), ('intake', '', 'survey.response.submitted'),
    ('intake', '', 'learning.action.added'), ('intake', '', 'learning.action.completed'),
    ('intake', '', 'learning.plan.submitted');
INSERT INTO event_writers (job, source, type) VALUES
    ('escalation', 'casefeedback/escalation', 'deadline.*'),
    ('learning', 'casefeedback/learning', 'deadline.*'),
    ('learning', 'casefeedback/learning', 'learning.stage.*'),
    ('erasure', 'casefeedback/audit', 'erasure.recorded');

-- The schema owner (and a superuser) does anything: it can switch triggers off anyway.
CREATE FUNCTION casefeedback_is_owner() RETURNS boolean LANGUAGE sql STABLE
SET search_path = public, pg_temp AS $$
    SELECT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'public.role_jobs'::regclass), 'USAGE')
$$;

CREATE FUNCTION casefeedback_does(p_job text) RETURNS boolean LANGUAGE sql STABLE
SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT FROM role_jobs WHERE role = current_user AND job = p_job)
$$;

CREATE FUNCTION refuse(message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'insufficient_privilege';
END $$;

-- Each appended event: a type and source the role's jobs may append, a body that says the same as its row,
-- and the next links of the chain after its head (seq head + 1, ..., each prev_hash the hash before).
CREATE FUNCTION events_appended_by_job() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
    head record;
    first_seq bigint;
    last_seq bigint;
    n bigint;
BEGIN
    IF casefeedback_is_owner() THEN
        RETURN NULL;
    END IF;
    SELECT a.seq, a.type, a.source INTO bad FROM appended a
    WHERE NOT EXISTS (
        SELECT FROM role_jobs j JOIN event_writers w ON w.job = j.job
        WHERE j.role = current_user
          AND CASE WHEN right(w.type, 1) = '*' THEN starts_with(a.type, left(w.type, -1)) ELSE a.type = w.type END
          AND CASE WHEN w.source = '' THEN NOT (lower(a.source) = 'casefeedback' OR lower(a.source) LIKE 'casefeedback/%')
                   ELSE a.source = w.source END)
    ORDER BY a.seq LIMIT 1;
    IF FOUND THEN
        PERFORM refuse(format('role %s may not append %s with source %s to the history (seq %s)',
                              current_user, bad.type, bad.source, bad.seq));
    END IF;
    SELECT a.seq INTO bad FROM appended a CROSS JOIN LATERAL (SELECT a.body::jsonb AS b) x
    WHERE (x.b->>'id', x.b->>'type', x.b->>'source', x.b->>'subject')
          IS DISTINCT FROM (a.id, a.type, a.source, a.subject)
    LIMIT 1;
    IF FOUND THEN
        PERFORM refuse(format('the body of seq %s must carry its row''s id, type, source and subject', bad.seq));
    END IF;
    SELECT min(seq), max(seq), count(*) INTO first_seq, last_seq, n FROM appended;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT seq, hash INTO head FROM chain_head;
    IF first_seq <> head.seq + 1 OR last_seq - first_seq + 1 <> n THEN
        PERFORM refuse(format('appended events must follow the chain head (seq %s) without a gap, got seq %s to %s',
                              head.seq, first_seq, last_seq));
    END IF;
    IF EXISTS (SELECT FROM appended a LEFT JOIN appended p ON p.seq = a.seq - 1
               WHERE a.prev_hash IS DISTINCT FROM CASE WHEN a.seq = first_seq THEN head.hash ELSE p.hash END) THEN
        PERFORM refuse('each appended event must link to the hash of the event before it');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_appended_by_job AFTER INSERT ON events REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION events_appended_by_job();

-- The head moves only with an append: forward, to the seq and hash of the newest event in the history.
CREATE FUNCTION chain_head_follows_append() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
BEGIN
    IF casefeedback_is_owner() THEN
        RETURN NEW;
    END IF;
    IF NEW.singleton IS DISTINCT FROM OLD.singleton OR NEW.seq <= OLD.seq
       OR NOT EXISTS (SELECT FROM events WHERE seq = NEW.seq AND hash = NEW.hash)
       OR EXISTS (SELECT FROM events WHERE seq > NEW.seq) THEN
        PERFORM refuse(format('role %s may move chain_head only with an append, to the newest event''s seq and '
                              'hash (asked: seq %s)', current_user, NEW.seq));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chain_head_follows_append BEFORE UPDATE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION chain_head_follows_append();

-- The timer index is shared: a row belongs to its owner column's job.
CREATE FUNCTION deadlines_of_own_job() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
BEGIN
    IF casefeedback_is_owner() THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    IF (TG_OP <> 'INSERT' AND NOT casefeedback_does(OLD.owner))
       OR (TG_OP <> 'DELETE' AND NOT casefeedback_does(NEW.owner)) THEN
        PERFORM refuse(format('role %s may write only its own job''s rows of deadlines (row of %s)', current_user,
                              CASE WHEN TG_OP = 'DELETE' THEN OLD.owner ELSE NEW.owner END));
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER deadlines_of_own_job BEFORE INSERT OR UPDATE OR DELETE ON deadlines
    FOR EACH ROW EXECUTE FUNCTION deadlines_of_own_job();

-- A consumer group is a job's when named casefeedback-JOB or casefeedback-JOB-... (scenarios' own groups).
CREATE FUNCTION casefeedback_does_group(p_group text) RETURNS boolean LANGUAGE sql STABLE
SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT FROM role_jobs WHERE role = current_user
                   AND (p_group = 'casefeedback-' || job OR starts_with(p_group, 'casefeedback-' || job || '-')))
$$;

CREATE FUNCTION positions_of_own_group() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
BEGIN
    IF casefeedback_is_owner() THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    IF (TG_OP <> 'INSERT' AND NOT casefeedback_does_group(OLD.grp))
       OR (TG_OP <> 'DELETE' AND NOT casefeedback_does_group(NEW.grp)) THEN
        PERFORM refuse(format('role %s may write only its own consumer group''s positions (group %s)', current_user,
                              CASE WHEN TG_OP = 'DELETE' THEN OLD.grp ELSE NEW.grp END));
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER positions_of_own_group BEFORE INSERT OR UPDATE OR DELETE ON consumer_positions
    FOR EACH ROW EXECUTE FUNCTION positions_of_own_group();

-- Only the owner creates objects: in the schema, and in pg_temp (a temporary function or table would
-- shadow the schema's for the session that made it).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    IF to_regrole('casefeedback_service') IS NOT NULL AND current_user <> 'casefeedback_service' THEN
        EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM casefeedback_service', current_database());
    END IF;
END $$;

DO $$
DECLARE
    r text;
BEGIN
    IF current_user IN (SELECT role FROM role_jobs UNION SELECT 'casefeedback_reader') THEN
        RETURN;  -- migrated by a job's own role: one role does everything
    END IF;
    FOREACH r IN ARRAY ARRAY['casefeedback_reader', 'casefeedback_intake', 'casefeedback_escalation',
                             'casefeedback_learning', 'casefeedback_metrics', 'casefeedback_relay',
                             'casefeedback_erasure'] LOOP
        CONTINUE WHEN to_regrole(r) IS NULL;
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO %I', r);
        IF r IN ('casefeedback_escalation', 'casefeedback_learning', 'casefeedback_metrics') THEN
            EXECUTE format('GRANT INSERT, UPDATE ON consumer_positions TO %I', r);  -- its own group's rows
        END IF;
    END LOOP;
    IF to_regrole('casefeedback_intake') IS NOT NULL THEN
        GRANT INSERT ON events TO casefeedback_intake;
        GRANT UPDATE (seq, hash) ON chain_head TO casefeedback_intake;
        GRANT INSERT, UPDATE, DELETE ON intake_held TO casefeedback_intake;  -- its hold (row locks need UPDATE)
        GRANT USAGE ON SEQUENCE intake_held_held_seq_seq TO casefeedback_intake;
        GRANT INSERT, UPDATE ON intake_cases TO casefeedback_intake;
        GRANT INSERT ON procedure_documents TO casefeedback_intake;  -- the document a case is received under
    END IF;
    IF to_regrole('casefeedback_escalation') IS NOT NULL THEN
        GRANT INSERT ON events TO casefeedback_escalation;
        GRANT UPDATE (seq, hash) ON chain_head TO casefeedback_escalation;
        GRANT INSERT, UPDATE ON escalation_cases, deadlines TO casefeedback_escalation;
        GRANT INSERT ON procedure_documents TO casefeedback_escalation;
    END IF;
    IF to_regrole('casefeedback_learning') IS NOT NULL THEN
        GRANT INSERT ON events TO casefeedback_learning;
        GRANT UPDATE (seq, hash) ON chain_head TO casefeedback_learning;
        GRANT INSERT, UPDATE ON learning_cases, deadlines TO casefeedback_learning;
        GRANT INSERT ON procedure_documents TO casefeedback_learning;
    END IF;
    IF to_regrole('casefeedback_metrics') IS NOT NULL THEN
        GRANT INSERT, UPDATE, DELETE ON metrics_buckets TO casefeedback_metrics;
        GRANT INSERT, UPDATE ON metrics_surveys TO casefeedback_metrics;
    END IF;
    IF to_regrole('casefeedback_relay') IS NOT NULL THEN
        GRANT INSERT, UPDATE ON relay_position TO casefeedback_relay;
    END IF;
    IF to_regrole('casefeedback_erasure') IS NOT NULL THEN
        GRANT INSERT ON events TO casefeedback_erasure;
        GRANT UPDATE (seq, hash) ON chain_head TO casefeedback_erasure;
        GRANT UPDATE (body, raw, digest) ON intake_held TO casefeedback_erasure;
        GRANT UPDATE (state) ON learning_cases TO casefeedback_erasure;
        GRANT EXECUTE ON FUNCTION erase_event(bigint, text, text[], text) TO casefeedback_erasure;
    END IF;
    IF to_regrole('casefeedback_service') IS NOT NULL AND current_user <> 'casefeedback_service' THEN
        -- every job at once, but the head only through an append and the rules only through a migration
        REVOKE INSERT, DELETE ON chain_head FROM casefeedback_service;
        REVOKE INSERT, UPDATE, DELETE ON role_jobs, event_writers FROM casefeedback_service;
    END IF;
END $$;
