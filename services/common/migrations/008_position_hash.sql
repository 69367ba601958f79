-- The history's chain hash at each consumer position: a consumer that finds another event (or none) at
-- a seq it applied knows committed history was lost or rewritten, and stops rather than skew figures.
ALTER TABLE consumer_positions ADD COLUMN hash bytea;
