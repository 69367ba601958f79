#!/bin/sh
# Back up casefeedback's database (the history and the services' state) and restore it into a fresh one.
#
#   deploy/backup.sh dump    DATABASE_URL FILE    pg_dump in custom format (compressed; read by pg_restore)
#   deploy/backup.sh restore FILE DATABASE_URL    into an empty database, in one transaction, or not at all
#
# DATABASE_URL is the schema owner's (casefeedback_owner): the dump holds the tables' grants to
# casefeedback_service, which must exist where it is restored. FILE "-" is standard output / input.
# Needs pg_dump and pg_restore of the server's major version or later (the postgres container has them).
# Prove the copy afterwards: DATABASE_URL=<the restored database> casefeedback replay   (exit 0: it agrees)
set -eu

usage() {
    echo "usage: $0 dump DATABASE_URL FILE | $0 restore FILE DATABASE_URL" >&2
    exit 2
}

[ $# -eq 3 ] || usage
case "$1" in
dump)
    if [ "$3" = - ]; then
        pg_dump --format=custom --dbname="$2"
    else
        pg_dump --format=custom --dbname="$2" --file="$3"
    fi
    ;;
restore)
    # --no-owner: the restoring role (the owner) owns what it creates, whatever the source's owner was called.
    if [ "$2" = - ]; then
        pg_restore --exit-on-error --single-transaction --no-owner --dbname="$3"
    else
        pg_restore --exit-on-error --single-transaction --no-owner --dbname="$3" "$2"
    fi
    ;;
*)
    usage
    ;;
esac
