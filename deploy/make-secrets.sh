#!/bin/sh
# Generate the secret files docker-compose.yml mounts (once, before the first `docker compose up`):
# deploy/secrets/{postgres_password, owner_password, ROLE_password and ROLE_database_url for each of intake,
# escalation, learning, metrics, relay, erasure and reader, service_password, database_url (the single role
# casefeedback_service, doing every job), migration_database_url, grafana_admin_password,
# kafka_upstream_password, kafka_jaas.conf, smtp_password}. Existing files are kept, so re-running never
# changes a password in use (and adds what an older version did not make). Put your SMTP relay's password in
# secrets/smtp_password.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets  # the files themselves must be readable by the containers' users (uid 999, 10001)

secret() {  # secret NAME VALUE: write the file unless it exists
    [ -e "secrets/$1" ] || printf '%s\n' "$2" > "secrets/$1"
    chmod 644 "secrets/$1"  # inside the 0700 directory: no other user on the host can reach it
}
password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

secret postgres_password "$(password)"
secret owner_password "$(password)"
secret service_password "$(password)"
secret grafana_admin_password "$(password)"
secret database_url "postgresql://casefeedback_service:$(cat secrets/service_password)@postgres:5432/casefeedback"
# One role per job: each container gets only its own URL.
for job in intake escalation learning metrics relay erasure reader; do
    secret "${job}_password" "$(password)"
    secret "${job}_database_url" \
        "postgresql://casefeedback_${job}:$(cat "secrets/${job}_password")@postgres:5432/casefeedback"
done
secret migration_database_url "postgresql://casefeedback_owner:$(cat secrets/owner_password)@postgres:5432/casefeedback"
# SASL/PLAIN over TLS on the brokers' external listener: the upstream systems' user is `upstream`.
secret kafka_upstream_password "$(password)"
[ -e secrets/kafka_jaas.conf ] || cat > secrets/kafka_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  user_upstream="$(cat secrets/kafka_upstream_password)";
};
JAAS
chmod 644 secrets/kafka_jaas.conf
secret smtp_password "replace-with-your-smtp-relay-password"
echo "secrets in $(pwd)/secrets"
