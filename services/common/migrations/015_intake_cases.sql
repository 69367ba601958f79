-- Each case's story as intake judged it (contract 11.1): the admitted acts in the order of their
-- `time`, as much of each as the rules read (type, id, time, and stage, outcome, dates and codes;
-- never free text or a person's reference). Written in the same transaction as the append, so the
-- judgement of the next act reads exactly what the history holds. A case of a history recorded
-- before this table existed gets its row from its recorded acts the first time intake judges one.
CREATE TABLE intake_cases (
    subject text  PRIMARY KEY,
    acts    jsonb NOT NULL
);

-- The history's last seq when intake began keeping stories: a case with no row whose events are all
-- later than this has no story to rebuild (every act since was judged here), so intake only reads the
-- recorded acts of a case that may predate the table.
CREATE TABLE intake_cases_since (seq bigint NOT NULL);
INSERT INTO intake_cases_since SELECT coalesce(max(seq), 0) FROM events;
