-- The metrics service's state: per-day counts by event time, per partition of casefeedback.events,
-- written in the same transaction as the group's consumer position (so each event counts once).
CREATE TABLE metrics_buckets (
    grp       text    NOT NULL,            -- consumer group (the positions in consumer_positions go with these counts)
    partition integer NOT NULL,            -- casefeedback.events partition the counted events came from
    kind      text    NOT NULL,            -- what is counted (compliment, complaint_outcome, answer, ...)
    labels    text[]  NOT NULL,            -- the bucket's label values (bounded sets; answers keep survey/question ids)
    day       integer NOT NULL,            -- UTC day ordinal of the events' time (proleptic Gregorian, 1 = 0001-01-01)
    n         bigint  NOT NULL,
    PRIMARY KEY (grp, partition, kind, labels, day)
);

-- Survey definitions, shared by every metrics worker (a survey's responses may sit on other partitions).
CREATE TABLE metrics_surveys (
    survey_id  text    PRIMARY KEY,
    partition  integer NOT NULL,           -- the partition its survey.defined arrived on (who exports targets)
    seq        bigint  NOT NULL,           -- history seq of the definition in force (the latest)
    definition jsonb   NOT NULL            -- the survey.defined data
);
