-- Warehouse bootstrap: schemas and platform tables that exist before any load.
-- Idempotent; applied by `python -m hdp db init` as the warehouse owner.
create extension if not exists pgcrypto;

create schema if not exists audit;
create schema if not exists hdp_private;

-- One row per (source, table, DAG run): what was read, what was written, and the gate's verdict.
-- dbt's staging models publish only rows of batches whose status is 'passed'.
create table if not exists audit.load_batch (
    batch_id bigserial primary key,
    source text not null,
    table_name text not null,
    run_id text not null,
    low_watermark timestamp,
    high_watermark timestamp,
    rows_read bigint,
    rows_written bigint,
    status text not null default 'loading'
        check (status in ('loading', 'loaded', 'passed', 'rejected', 'failed')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    duration_s double precision,
    loaded_by text not null default current_user,
    error text,
    unique (source, table_name, run_id)
);

-- Every expectation result of every gate run (issue 5 builds history on it).
create table if not exists audit.quality_result (
    result_id bigserial primary key,
    batch_id bigint not null references audit.load_batch (batch_id),
    source text not null,
    table_name text not null,
    check_name text not null,
    column_name text,
    success boolean not null,
    observed_value text,
    expected text,
    checked_at timestamptz not null default now()
);

-- Keyed pseudonyms: the key lives in a table only the platform owner reads,
-- so it never appears in SQL text, dbt's compiled models or logs.
create table if not exists hdp_private.pseudonym_key (
    id boolean primary key default true check (id),
    key_bytes bytea not null
);

create or replace function hdp_private.pseudonym(value text) returns text
language sql stable security definer
set search_path = pg_catalog, public
as $$
    select case when value is null then null
        else encode(hmac(convert_to(value, 'UTF8'), k.key_bytes, 'sha256'), 'hex') end
    from hdp_private.pseudonym_key as k
$$;
