#!/bin/sh
# Run once by the postgres image on a new data directory (/docker-entrypoint-initdb.d), as its superuser.
# Creates the roles casefeedback runs with, one per job, so that each credential does only its job:
#   casefeedback_owner       owns the database and its schema; `casefeedback migrate` connects as it
#   casefeedback_intake, casefeedback_escalation, casefeedback_learning, casefeedback_metrics,
#   casefeedback_relay       one role per service: each appends only its own event types (intake: inbound
#                            ones; metrics and the relay: none) and writes only its own tables
#   casefeedback_erasure     `casefeedback erase` and `retention --apply`: the only one that may erase
#   casefeedback_reader      reads: report, replay, history, cases
#   casefeedback_service     every job at once, for a single-role deployment (DATABASE_URL alone)
# None owns anything or may create objects (not even temporary ones); their grants are migration
# 020_roles_per_job.sql, applied by the owner. Passwords come from the secret files mounted at
# /run/secrets (see deploy/make-secrets.sh).
set -eu

roles="owner intake escalation learning metrics relay erasure reader service"
set --
for role in $roles; do
    set -- "$@" -v "${role}_password=$(cat "/run/secrets/${role}_password")"
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres "$@" <<'SQL'
CREATE ROLE casefeedback_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE casefeedback_intake LOGIN PASSWORD :'intake_password';
CREATE ROLE casefeedback_escalation LOGIN PASSWORD :'escalation_password';
CREATE ROLE casefeedback_learning LOGIN PASSWORD :'learning_password';
CREATE ROLE casefeedback_metrics LOGIN PASSWORD :'metrics_password';
CREATE ROLE casefeedback_relay LOGIN PASSWORD :'relay_password';
CREATE ROLE casefeedback_erasure LOGIN PASSWORD :'erasure_password';
CREATE ROLE casefeedback_reader LOGIN PASSWORD :'reader_password';
CREATE ROLE casefeedback_service LOGIN PASSWORD :'service_password';
CREATE DATABASE casefeedback OWNER casefeedback_owner;
REVOKE ALL ON DATABASE casefeedback FROM PUBLIC;
GRANT CONNECT ON DATABASE casefeedback TO casefeedback_intake, casefeedback_escalation, casefeedback_learning,
    casefeedback_metrics, casefeedback_relay, casefeedback_erasure, casefeedback_reader, casefeedback_service;
\connect casefeedback
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
