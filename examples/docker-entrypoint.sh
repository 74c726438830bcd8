#!/bin/sh
# Entry point of the litestream-rs container image (examples/Dockerfile).
#
# 1. Restores the database from its replica when the container starts without one (a new host,
#    a lost volume): `-if-db-not-exists` skips the restore when the database is there,
#    `-if-replica-exists` lets the very first start go on with no backup at all.
# 2. Runs the image's command (the application) under `litestream replicate -exec`: the
#    database is replicated while the application runs, SIGTERM and SIGINT are forwarded to it,
#    and when it exits a last sync runs and the container exits with the application's status.
set -eu

: "${DB_PATH:?set DB_PATH to the database file, e.g. /data/app.db}"
: "${REPLICA_URL:?set REPLICA_URL to the replica, e.g. s3://bucket/app.db}"
CONFIG="${LITESTREAM_CONFIG:-/etc/litestream.yml}"

litestream restore -config "$CONFIG" -if-db-not-exists -if-replica-exists "$DB_PATH"

if [ "$#" -eq 0 ]; then
    exec litestream replicate -config "$CONFIG"
fi

# `-exec` takes one string that litestream splits like a shell: quote each argument.
command=""
for arg in "$@"; do
    quoted=$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")
    command="$command '$quoted'"
done
exec litestream replicate -config "$CONFIG" -exec "$command"
