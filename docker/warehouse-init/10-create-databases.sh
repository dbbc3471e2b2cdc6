#!/usr/bin/env bash
# First start of the `warehouse` container (empty data volume) only: the postgres image runs the
# files of /docker-entrypoint-initdb.d once. Creates Airflow's metadata database and the warehouse
# database, each owned by its own login role, with passwords from the environment (.env).
# Schemas, platform roles and tables inside `hdp` are created by `python -m hdp db init`
# (service airflow-init), which is idempotent and runs on every start.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}"
: "${HDP_WAREHOUSE_OWNER_PASSWORD:?set HDP_WAREHOUSE_OWNER_PASSWORD in .env}"
: "${HDP_WAREHOUSE_OWNER:=hdp}"
: "${HDP_WAREHOUSE_DB:=hdp}"

# Values travel as psql variables (:'x' quotes a literal, :"x" an identifier), never spliced into
# SQL text by the shell, so a password with quotes in it cannot break or inject anything.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v wh_user="$HDP_WAREHOUSE_OWNER" \
    -v wh_password="$HDP_WAREHOUSE_OWNER_PASSWORD" \
    -v wh_db="$HDP_WAREHOUSE_DB" <<'SQL'
select format('create role airflow login password %L', :'airflow_password')
where not exists (select from pg_roles where rolname = 'airflow') \gexec
select format('alter role airflow login password %L', :'airflow_password') \gexec
select 'create database airflow owner airflow encoding ''UTF8'' template template0'
where not exists (select from pg_database where datname = 'airflow') \gexec

select format('create role %I login password %L', :'wh_user', :'wh_password')
where not exists (select from pg_roles where rolname = :'wh_user') \gexec
select format('alter role %I login password %L', :'wh_user', :'wh_password') \gexec
select format('create database %I owner %I encoding ''UTF8'' template template0', :'wh_db', :'wh_user')
where not exists (select from pg_database where datname = :'wh_db') \gexec

-- Each role reaches its own database only.
revoke all on database airflow from public;
select format('revoke all on database %I from public', :'wh_db') \gexec
grant connect, temporary on database airflow to airflow;
select format('grant connect, temporary on database %I to %I', :'wh_db', :'wh_user') \gexec
SQL
