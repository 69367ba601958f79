-- Escalation and the shared deadline mechanism.

-- Every procedure document a case was received under, by key id@version#hash: file edits never
-- move the deadlines of cases already open.
CREATE TABLE procedure_documents (
    key        text        PRIMARY KEY,
    id         text        NOT NULL,
    version    integer     NOT NULL,
    document   jsonb       NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per complaint: the domain state (JSON) plus the columns gauges group by.
CREATE TABLE escalation_cases (
    subject       text    PRIMARY KEY,
    partition     integer NOT NULL,            -- partition of casefeedback.events the case lives on
    last_seq      bigint  NOT NULL,            -- highest history seq applied to this case (other sources)
    open          boolean NOT NULL,
    stage         text    NOT NULL,
    service_area  text    NOT NULL,
    state         jsonb   NOT NULL
);
CREATE INDEX escalation_cases_open ON escalation_cases (partition, stage, service_area) WHERE open;

-- The timer index shared by escalation and learning (owner): one row per deadline, derived from
-- the owning case's state on every save. next_fire_at is when the row next needs the tick.
CREATE TABLE deadlines (
    owner         text        NOT NULL,
    subject       text        NOT NULL,
    key           text        NOT NULL,        -- stage:visit:kind
    partition     integer     NOT NULL,
    stage         text        NOT NULL,
    kind          text        NOT NULL,
    due           timestamptz NOT NULL,
    status        text        NOT NULL,        -- open, met, cancelled
    breached      boolean     NOT NULL,
    late          boolean,
    next_fire_at  timestamptz,
    PRIMARY KEY (owner, subject, key)
);
CREATE INDEX deadlines_timer ON deadlines (owner, next_fire_at) WHERE next_fire_at IS NOT NULL;
CREATE INDEX deadlines_overdue ON deadlines (owner, partition) WHERE status = 'open' AND breached;
CREATE INDEX deadlines_due ON deadlines (owner, due) WHERE status <> 'cancelled';
