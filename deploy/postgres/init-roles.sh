#!/bin/sh
# Run once by the postgres image on a new data directory (/docker-entrypoint-initdb.d), as its superuser.
# Creates the two roles casefeedback runs with, so that the services own nothing:
#   casefeedback_owner    owns the database and its schema; `casefeedback migrate` connects as it
#   casefeedback_service  the services' role: reads and appends to the history, keeps the services' own
#                         state; cannot update, delete or truncate the history, or change the schema
#                         (its grants: migration 007_roles.sql, applied by the owner)
# Passwords come from the secret files mounted at /run/secrets (see deploy/make-secrets.sh).
set -eu

owner_password=$(cat /run/secrets/owner_password)
service_password=$(cat /run/secrets/service_password)

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v owner_password="$owner_password" -v service_password="$service_password" <<'SQL'
CREATE ROLE casefeedback_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE casefeedback_service LOGIN PASSWORD :'service_password';
CREATE DATABASE casefeedback OWNER casefeedback_owner;
REVOKE ALL ON DATABASE casefeedback FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE casefeedback TO casefeedback_service;
\connect casefeedback
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
