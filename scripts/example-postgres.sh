#!/usr/bin/env bash
# Starts (or stops, with `stop`) the local PostgreSQL of examples/fraud_enrichment.sql: a
# server of its own on 127.0.0.1:55432 with its data under /tmp/sluice-example-pg, holding
# the `customer_dim` table (100 customers). PostgreSQL refuses to run as root, so as root
# the server runs as the `postgres` user. Needs Debian's postgresql (scripts/bootstrap.sh).
set -euo pipefail
PORT=55432
DIR=/tmp/sluice-example-pg
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-start}" = stop ]; then
  as_server "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop
  exit 0
fi
if [ ! -d "$DIR/data" ]; then
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
  as_server "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
as_server "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null
psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS customer_dim;
CREATE TABLE customer_dim (customer_id BIGINT PRIMARY KEY, age INT, tenure INT, segment TEXT);
INSERT INTO customer_dim
SELECT i, 20 + (i * 3) % 50, i % 7, (ARRAY['new', 'loyal', 'casual'])[i % 3 + 1]
FROM generate_series(0, 99) AS i;
SQL
echo "PostgreSQL is up on 127.0.0.1:$PORT with table customer_dim (stop it: bash scripts/example-postgres.sh stop)"
