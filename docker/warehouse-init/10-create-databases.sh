#!/usr/bin/env bash
# First start of the `warehouse` container (empty data volume) only: the postgres image runs the
# files of /docker-entrypoint-initdb.d once. Creates the warehouse database, owned by its own
# login role, with the password from the environment (.env). Airflow's metadata database is not
# here: it has a server of its own (service airflow-db), so a warehouse restart leaves it up.
# Schemas, platform roles and tables inside `hdp` are created by `python -m hdp db init`
# (service airflow-init), which is idempotent and runs on every start.
set -euo pipefail

: "${HDP_WAREHOUSE_OWNER_PASSWORD:?set HDP_WAREHOUSE_OWNER_PASSWORD in .env}"
: "${HDP_WAREHOUSE_OWNER:=hdp}"
: "${HDP_WAREHOUSE_DB:=hdp}"

# Values travel as psql variables (:'x' quotes a literal, :"x" an identifier), never spliced into
# SQL text by the shell, so a password with quotes in it cannot break or inject anything.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v wh_user="$HDP_WAREHOUSE_OWNER" \
    -v wh_password="$HDP_WAREHOUSE_OWNER_PASSWORD" \
    -v wh_db="$HDP_WAREHOUSE_DB" <<'SQL'
select format('create role %I login password %L', :'wh_user', :'wh_password')
where not exists (select from pg_roles where rolname = :'wh_user') \gexec
select format('alter role %I login password %L', :'wh_user', :'wh_password') \gexec
select format('create database %I owner %I encoding ''UTF8'' template template0', :'wh_db', :'wh_user')
where not exists (select from pg_database where datname = :'wh_db') \gexec

-- The owner reaches its own database only.
select format('revoke all on database %I from public', :'wh_db') \gexec
select format('grant connect, temporary on database %I to %I', :'wh_db', :'wh_user') \gexec
SQL
