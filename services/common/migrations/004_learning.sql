-- Learning stage: one row per complaint, the same shape as escalation_cases, plus when
-- its held (early) learning events are due to be dead-lettered as out_of_order.
CREATE TABLE learning_cases (
    subject       text    PRIMARY KEY,
    partition     integer NOT NULL,
    last_seq      bigint  NOT NULL,
    open          boolean NOT NULL,            -- a learning stage is open
    stage         text    NOT NULL,
    service_area  text    NOT NULL,
    state         jsonb   NOT NULL,
    held_until    timestamptz                  -- wall clock: held events expire (grace) at this instant
);
CREATE INDEX learning_cases_open ON learning_cases (partition) WHERE open;
CREATE INDEX learning_cases_held ON learning_cases (held_until) WHERE held_until IS NOT NULL;
