-- Least privilege. The services connect as role casefeedback_service, which owns nothing: it reads
-- and appends to the history, and reads and writes the services' own state, but cannot update,
-- delete or truncate the history, switch its append-only trigger off, or change the schema (all of
-- which need the owner, who runs these migrations). Whoever sets up the server creates the role
-- before the first migration (deploy/postgres/init-roles.sh, the embedded server); where it does
-- not exist, one role does everything and there is nothing to grant.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'casefeedback_service')
       OR current_user = 'casefeedback_service' THEN
        RETURN;
    END IF;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO casefeedback_service;
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO casefeedback_service;
    REVOKE UPDATE, DELETE ON events FROM casefeedback_service;
    REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM casefeedback_service;
    IF to_regclass('chain_format') IS NOT NULL THEN  -- written once, by its migration
        REVOKE INSERT, UPDATE, DELETE ON chain_format FROM casefeedback_service;
    END IF;
    -- Tables of later migrations get the same row access; each takes away what its rows must keep.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO casefeedback_service;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO casefeedback_service;
END $$;
