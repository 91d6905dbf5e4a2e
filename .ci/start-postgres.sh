#!/usr/bin/env bash
# Start a local PostgreSQL for the feedback-store tests and make sure role and database parley_test exist.
# Idempotent: safe to run again while the server is up. Prints only the connection URL on success.
# Env: PARLEY_PG_USER / PARLEY_PG_PASSWORD / PARLEY_PG_DB (default parley / parley / parley_test).
set -euo pipefail

user="${PARLEY_PG_USER:-parley}"
password="${PARLEY_PG_PASSWORD:-parley}"
db="${PARLEY_PG_DB:-parley_test}"
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    $as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if [ -z "$version" ]; then
    echo "start-postgres: no PostgreSQL server under /usr/lib/postgresql" >&2
    exit 1
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
    $as_root pg_createcluster "$version" main >/dev/null
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')"
if [ "$status" != "online" ]; then
    $as_root pg_ctlcluster "$version" main start >/dev/null 2>&1 || $as_root service postgresql start >/dev/null
fi
for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "start-postgres: server on port $port did not come up" >&2; exit 1; }

psql_admin() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- psql -p "$port" -qAtX -v ON_ERROR_STOP=1 "$@"
    else
        sudo -u postgres psql -p "$port" -qAtX -v ON_ERROR_STOP=1 "$@"
    fi
}
# CREATEDB lets each test create and drop a database of its own.
psql_admin -v user="$user" -v password="$password" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SQL
psql_admin -v user="$user" -v db="$db" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
echo "postgresql+psycopg://${user}:${password}@127.0.0.1:${port}/${db}"
