-- Warehouse bootstrap: schemas and platform tables that exist before any load.
-- Idempotent; applied by `python -m hdp db init` as the warehouse owner.
create extension if not exists pgcrypto;
-- levenshtein() for the master patient index's name comparison (dbt int_mpi__scored_pairs)
create extension if not exists fuzzystrmatch;

create schema if not exists audit;
create schema if not exists hdp_private;

-- One row per (source, table, DAG run): what was read, what was written, and the gate's verdict.
-- dbt's staging models publish only rows of batches whose status is 'published'.
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
set row_security = off
as $$
    select case when value is null then null
        else encode(hmac(convert_to(value, 'UTF8'), k.key_bytes, 'sha256'), 'hex') end
    from hdp_private.pseudonym_key as k
$$;

-- ---------------------------------------------------------------------------------------------
-- Patient data protection (issue 6; docs/security.md). Roles and grants: security.py.
-- ---------------------------------------------------------------------------------------------

-- The schemas dbt and the loader write into exist before any run, so that the platform's
-- grants and default privileges (security.py) can name them; dbt's and the extractor's
-- `create schema if not exists` are then no-ops.
create schema if not exists raw_his;
create schema if not exists staging;
create schema if not exists mapping;
create schema if not exists standard;
create schema if not exists intermediate;
create schema if not exists marts;
create schema if not exists reference;

-- Who loaded a batch: the login (session_user), not a group role it switched to.
alter table audit.load_batch alter column loaded_by set default session_user;

-- Key versions: rotation (security.rotate_pseudonym_key) bumps it; old keys are not kept.
alter table hdp_private.pseudonym_key add column if not exists key_version integer not null
default 1;
alter table hdp_private.pseudonym_key add column if not exists rotated_at timestamptz;

-- The one place clear identifiers persist outside the landing schema: one row per HIS
-- registration, each identifier encrypted with pgp_sym_encrypt (AES-256) under the identity
-- key, which the database never stores (it arrives per session by COPY; security.py).
create table if not exists hdp_private.patient_identity (
    source text not null,
    patient_id bigint not null,
    patient_key text,
    mrn bytea,
    name bytea,
    id_card_no bytea,
    phone bytea,
    address bytea,
    refreshed_at timestamptz not null default now(),
    primary key (source, patient_id)
);

-- Every re-identification (decrypting hdp_private.patient_identity): who, when, whom, why.
create table if not exists audit.identity_access (
    access_id bigserial primary key,
    accessed_by text not null default session_user,
    accessed_at timestamptz not null default now(),
    patient_key text not null,
    purpose text not null
);

-- Every dbt model build of the marts (macro record_transform): who built what, when.
create table if not exists audit.transform_run (
    transform_id bigserial primary key,
    invocation_id text not null,
    model text not null,
    row_count bigint,
    built_by text not null default session_user,
    built_at timestamptz not null default now()
);

-- Every pseudonym key rotation (never the key itself).
create table if not exists audit.key_rotation (
    rotation_id bigserial primary key,
    key_version integer not null,
    rotated_by text not null default session_user,
    rotated_at timestamptz not null default now()
);

-- Department-level analysts: which departments (dim_department.department_key) each login
-- sees in the marts. Row-level security on the facts reads it (macro enable_department_rls);
-- each analyst reads only their own mapping rows.
create table if not exists audit.analyst_department (
    role_name text not null,
    dept_code text not null,
    primary key (role_name, dept_code)
);
alter table audit.analyst_department enable row level security;
drop policy if exists own_rows on audit.analyst_department;
create policy own_rows on audit.analyst_department for select using (role_name = current_user);

-- A hospital's analysts (hdp_institution_analyst): which institutions (dim_institution) each
-- login sees in the marts; row-level security on the facts and marts reads it (macro
-- enable_department_rls). Group analysts (hdp_analyst) see every institution.
create table if not exists audit.analyst_institution (
    role_name text not null,
    institution_id text not null,
    primary key (role_name, institution_id)
);
alter table audit.analyst_institution enable row level security;
drop policy if exists own_rows on audit.analyst_institution;
create policy own_rows on audit.analyst_institution for select using (role_name = current_user);

-- Functions are executable by PUBLIC by default; the pseudonym function is granted explicitly.
revoke all on all functions in schema hdp_private from public;

-- Privileged code (the owner's jobs, SECURITY DEFINER functions) reads tables that a service
-- role owns: the loader's raw_* and the transformer's models. Their owner can hook code to them
-- that would run with the reader's rights: a policy (owner code runs with row_security = off,
-- so a planted policy raises instead of running), a view in its place, or a column of a type of
-- its own whose casts or operators it wrote. This lock-and-check refuses the last two: the
-- relation must be a plain table of built-in column types, and the ACCESS SHARE lock held to
-- the end of the transaction keeps it so (ALTER, DROP and RENAME wait for it). The name is
-- never a value of a row.
create or replace function audit.require_plain_table(relation text) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
    rel regclass := to_regclass(relation);
begin
    if rel is null then
        raise exception 'relation % does not exist', relation using errcode = '42P01';
    end if;
    execute format('lock table %s in access share mode', rel);
    if (select c.relkind from pg_class as c where c.oid = rel) not in ('r', 'p') then
        raise exception 'privileged code refuses %: not a table (a view or another relation '
            'could run its owner''s code with higher rights)', relation
            using errcode = '42809';
    end if;
    if exists (
        select 1 from pg_attribute as a
        inner join pg_type as t on a.atttypid = t.oid
        where a.attrelid = rel and a.attnum > 0 and not a.attisdropped
            and t.typnamespace <> 'pg_catalog'::regnamespace
    ) then
        raise exception 'privileged code refuses %: not a table of built-in column types '
            '(a type of its own could run its owner''s code with higher rights)', relation
            using errcode = '42809';
    end if;
end
$$;
revoke all on function audit.require_plain_table(text) from public;

-- The patients a department analyst may see in dim_patient: those with an encounter in one of
-- their departments. SECURITY DEFINER so it can read the facts unfiltered and the whole mapping,
-- keyed on the login (session_user); plpgsql so marts.fct_encounter need not exist yet. The
-- facts belong to the transformer: row_security = off and the plain-table check keep code it
-- could attach to them from running with the owner's rights.
create or replace function audit.analyst_patient_keys() returns setof text
language plpgsql stable security definer
set search_path = pg_catalog
set row_security = off
as $$
begin
    perform audit.require_plain_table('marts.fct_encounter');
    return query
        select distinct e.patient_key
        from marts.fct_encounter as e
        inner join audit.analyst_department as d on e.department_key = d.dept_code
        where d.role_name = session_user;
end
$$;
revoke all on function audit.analyst_patient_keys() from public;

-- The patients a hospital's analyst may see in dim_patient: those with an encounter at one of
-- their institutions (as audit.analyst_patient_keys, by institution).
create or replace function audit.institution_patient_keys() returns setof text
language plpgsql stable security definer
set search_path = pg_catalog
set row_security = off
as $$
begin
    perform audit.require_plain_table('marts.fct_encounter');
    return query
        select distinct e.patient_key
        from marts.fct_encounter as e
        inner join audit.analyst_institution as i on e.institution_id = i.institution_id
        where i.role_name = session_user;
end
$$;
revoke all on function audit.institution_patient_keys() from public;

-- ANALYZE needs the table's owner (PostgreSQL 15); the loader keeps the planner's statistics of
-- the load audit current through this function after each gate (dbt's staging joins on it).
create or replace function audit.analyze_load_batch() returns void
language plpgsql security definer
set search_path = pg_catalog
set row_security = off
as $$
begin
    analyze audit.load_batch;
end
$$;
revoke all on function audit.analyze_load_batch() from public;

-- ---------------------------------------------------------------------------------------------
-- Write-audit-publish, row-level quarantine and the checks catalogue (issue 5; hdp.quality).
-- ---------------------------------------------------------------------------------------------

-- A batch is extracted (loaded), validated (passed | rejected), then published with every other
-- table of its run in one transaction (published), or held back because a sibling failed
-- (withheld). Staging reads published batches only.
-- held: a delivery the guard holds for review (audit.held_delivery, hdp.quality.guard).
alter table audit.load_batch drop constraint if exists load_batch_status_check;
alter table audit.load_batch add constraint load_batch_status_check check (
    status in (
        'loading', 'loaded', 'passed', 'rejected', 'failed', 'published', 'withheld', 'held'
    )
);
alter table audit.load_batch add column if not exists rows_quarantined bigint;
alter table audit.load_batch add column if not exists published_at timestamptz;

-- Rows an extract read again in its look-back window (or that an overlapping run published
-- first) whose version (primary key, watermark) a published batch already holds: not stored
-- again. rows_written = rows_read - rows_skipped; the gate reconciles with that.
alter table audit.load_batch add column if not exists rows_skipped bigint;

-- Watermarks of every kind (issue 16; hdp.ingest.watermark): a timestamp watermark stays in
-- low/high_watermark (as the source has it; in UTC for a timestamptz or a declared time zone),
-- an integer one in low/high_watermark_id. watermark_kind: timestamp, timestamptz,
-- zoned_timestamp or integer; null on batches of before (a timestamp as the source had it).
alter table audit.load_batch add column if not exists watermark_kind text;
alter table audit.load_batch add column if not exists low_watermark_id bigint;
alter table audit.load_batch add column if not exists high_watermark_id bigint;

-- A published batch is immutable (issue 12): a rerun of its run must not reopen it, move its
-- interval or change its counts (hdp.extract never tries; this holds for any other code too).
create or replace function audit.keep_published_batch() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
    if old.status = 'published'
        and (new.status, new.low_watermark, new.high_watermark, new.rows_written,
            new.watermark_kind, new.low_watermark_id, new.high_watermark_id)
        is distinct from (old.status, old.low_watermark, old.high_watermark, old.rows_written,
            old.watermark_kind, old.low_watermark_id, old.high_watermark_id)
    then
        raise exception 'batch % of %.% (run %) is published: a published batch is immutable',
            old.batch_id, old.source, old.table_name, old.run_id;
    end if;
    return new;
end
$$;
drop trigger if exists keep_published_batch on audit.load_batch;
create trigger keep_published_batch before update on audit.load_batch
for each row execute function audit.keep_published_batch();

-- Each check result names its catalogue entry (expectations/<source>.yml).
alter table audit.quality_result add column if not exists check_id text;
alter table audit.quality_result add column if not exists category text;
alter table audit.quality_result add column if not exists severity text;
alter table audit.quality_result add column if not exists threshold text;
alter table audit.quality_result add column if not exists status text;

-- Rows that failed a row-level check: the row's key, the check and the kind of fault, never
-- the offending value. action quarantine: the row is not published until released (replay);
-- action warn: the row proceeds and is only counted.
create table if not exists audit.row_issue (
    issue_id bigserial primary key,
    batch_id bigint not null references audit.load_batch (batch_id),
    source text not null,
    table_name text not null,
    record_key text not null,
    check_id text not null,
    column_name text,
    category text not null,
    action text not null check (action in ('quarantine', 'warn')),
    detected_at timestamptz not null default now(),
    released_at timestamptz,
    released_by text
);
create index if not exists row_issue_batch_idx on audit.row_issue (batch_id, table_name);

-- When each source last delivered rows, checked against its deadline (manifest `freshness`).
create table if not exists audit.freshness_check (
    check_id bigserial primary key,
    source text not null,
    run_id text not null,
    last_delivery timestamptz,
    age_hours double precision,
    max_age_hours double precision not null,
    is_stale boolean not null,
    checked_at timestamptz not null default now()
);

-- Helpers the row-level checks call (SQL conditions in expectations/<source>.yml).
-- Full-width ASCII (U+FF01..U+FF5E) and the ideographic space (U+3000) to their half-width
-- forms, as typed by Chinese input methods (the no-break space U+00A0 is not translated: the
-- last character of the first list is a plain space, as in the macro). The one definition:
-- dbt's macro to_halfwidth() calls it. A plain SQL function of immutable parts, so PostgreSQL
-- inlines it into the calling query (no function call per row).
create or replace function audit.to_halfwidth(value text) returns text
language sql immutable parallel safe
return translate(
    value,
    '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 ',
    '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~  '
);

-- Dates as HIS front ends and exports write them: 1980-01-02, 1980/1/2, 1980.1.2, 19800102
-- (one separator throughout), full-width digits, and a weekday after the date ('2018-01-01
-- 星期一', '周一', '(周一)', 'Mon', 'Monday'); impossible calendar dates ('2018-02-29') and
-- anything else give null. The one definition: the gate's generated `parses: date` checks
-- (hdp.quality.checks) and dbt's macro parse_cn_date() both call it, so a value staging cannot
-- parse is one the gate quarantined. No EXCEPTION block (make_date() only ever sees a valid
-- date), so it is parallel safe and costs no subtransaction per row.
create or replace function audit.cn_date_text(value text) returns text
language plpgsql immutable parallel safe
as $$
declare
    t text := btrim(value);
begin
    if t !~ '^[0-9]{4}[-/.]?[0-9]{1,2}[-/.]?[0-9]{1,2}$' then
        -- the rare forms (full-width, a weekday) pay for normalising
        t := regexp_replace(
            upper(btrim(audit.to_halfwidth(t))), audit.cn_weekday_pattern(), ''
        );
    end if;
    return t;
end
$$;

-- A weekday written after a date, as a trailing pattern (group 1 is the weekday's name).
create or replace function audit.cn_weekday_pattern() returns text
language sql immutable parallel safe
return '[[:space:],]*[(]?(星期[一二三四五六日天]|周[一二三四五六日天]|MON(DAY)?|TUE(S|SDAY)?|'
    'WED(NESDAY)?|THU(RS?|RSDAY)?|FRI(DAY)?|SAT(URDAY)?|SUN(DAY)?)[.]?[)]?$';

create or replace function audit.parse_cn_date(value text) returns date
language plpgsql immutable parallel safe
as $$
declare
    t text := audit.cn_date_text(value);
    y int;
    m int;
    d int;
begin
    if t ~ '^[0-9]{8}$' then
        y := substr(t, 1, 4); m := substr(t, 5, 2); d := substr(t, 7, 2);
    elsif t ~ '^[0-9]{4}([-/.])[0-9]{1,2}\1[0-9]{1,2}$' then
        t := translate(t, '/.', '--');
        y := split_part(t, '-', 1); m := split_part(t, '-', 2); d := split_part(t, '-', 3);
    else
        return null;
    end if;
    if y < 1 or m not between 1 and 12 or d < 1 then
        return null;
    end if;
    if d > extract(day from make_date(y, m, 1) + interval '1 month - 1 day') then
        return null;
    end if;
    return make_date(y, m, d);
end
$$;

-- A date and time typed as text, as HIS front ends and exports write them: '2024-01-02
-- 08:30:05', '2024/1/2 8:30', '2024-01-02T08:30', '20240102083005', '202401020830', a date
-- alone (midnight), full-width digits, a weekday after the date ('2024-01-05 星期五 09:30').
-- The date part is audit.parse_cn_date's (one definition of the date formats); the time must
-- be H:MM or H:MM:SS within the day; anything else, and impossible dates, give null. The one
-- definition: the gate's `parses: timestamp` checks and dbt's macro parse_cn_timestamp().
create or replace function audit.parse_cn_timestamp(value text) returns timestamp
language plpgsql immutable parallel safe
as $$
declare
    -- one space between date and time: 'T' and runs of white space become ' '
    t text := regexp_replace(
        regexp_replace(btrim(audit.to_halfwidth(value)), '^([0-9/.-]+)T', '\1 '), '\s+', ' ', 'g'
    );
    date_text text := t;
    time_text text;
    day date;
begin
    if t ~ '^[0-9]{14}$' then
        date_text := left(t, 8);
        time_text := substr(t, 9, 2) || ':' || substr(t, 11, 2) || ':' || substr(t, 13, 2);
    elsif t ~ '^[0-9]{12}$' then
        date_text := left(t, 8);
        time_text := substr(t, 9, 2) || ':' || substr(t, 11, 2);
    elsif t ~ ' [0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2})?$' then
        time_text := substring(t from ' ([0-9:]+)$');
        date_text := left(t, length(t) - length(time_text) - 1);
    end if;
    day := audit.parse_cn_date(date_text);
    if day is null then
        return null;
    elsif time_text is null then
        return day::timestamp;
    elsif time_text ~ '^([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$' then
        return day + time_text::interval;
    end if;
    return null;
end
$$;

-- The ISO weekday (1 = Monday .. 7 = Sunday) a date's text names after the date; null when it
-- names none. audit.parse_cn_date() ignores it; the gate's weekday checks compare the two.
create or replace function audit.cn_date_weekday(value text) returns int
language sql immutable parallel safe
return case
    when btrim(value) ~ '^[0-9]{4}[-/.]?[0-9]{1,2}[-/.]?[0-9]{1,2}$' then null
    else (
        select case
            when w ~ '^(星期|周)' then least(strpos('一二三四五六日天', right(w, 1)), 7)
            else (strpos('MONTUEWEDTHUFRISATSUN', left(w, 3)) + 2) / 3
        end
        from (
            select (regexp_match(upper(btrim(audit.to_halfwidth(value))),
                audit.cn_weekday_pattern()))[1] as w
        ) as named
    )
end;

-- True when a date's text names a weekday the date does not fall on ('2018-01-01 星期五':
-- 2018-01-01 was a Monday); false or null otherwise.
create or replace function audit.cn_date_weekday_contradicts(value text) returns boolean
language sql immutable parallel safe
return audit.cn_date_weekday(value)
    is distinct from extract(isodow from audit.parse_cn_date(value))
    and audit.cn_date_weekday(value) is not null
    and audit.parse_cn_date(value) is not null;

-- A resident identity card number in canonical form: half-width, no white space, upper-case
-- 'X'; '' as null. The gate's check and dbt's staging (macro normalize_cn_id_card) both call it.
create or replace function audit.normalize_cn_id_card(value text) returns text
language sql immutable parallel safe
return nullif(upper(regexp_replace(audit.to_halfwidth(value), '\s+', '', 'g')), '');

-- GB 11643-1999 resident identity card number: 17 digits, a valid birth date, and the check
-- character of ISO 7064 MOD 11-2, after normalising (a full-width number typed by an input
-- method is the same number). The one definition: the gate's row check
-- his.patients.id_card_checksum and dbt's macro is_valid_cn_id_card() call it, so a number
-- staging accepts never fails the gate's check.
create or replace function audit.is_valid_cn_id_card(value text) returns boolean
-- parallel unsafe: it was labelled so when audit.parse_cn_date had an EXCEPTION block (which
-- fails in parallel workers); the parser has none now, the label is kept until a parallel
-- plan of staging is measured
language plpgsql immutable parallel unsafe
as $$
declare
    -- an already canonical number (staging passes one) skips the costly translate()
    c text := case when value ~ '^[0-9]{17}[0-9X]$' then value
        else audit.normalize_cn_id_card(value) end;
    weights int[] := array[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    total int := 0;
begin
    if c is null or c !~ '^[0-9]{17}[0-9X]$' then
        return false;
    end if;
    for i in 1..17 loop
        total := total + weights[i] * substr(c, i, 1)::int;
    end loop;
    return substr('10X98765432', total % 11 + 1, 1) = substr(c, 18, 1)
        and audit.parse_cn_date(substr(c, 7, 8)) is not null;
end
$$;

-- A row's key in clear, as text: its primary key columns (in the manifest's order) as a JSON
-- array of text ('["R1","2"]': no separator a value could hold). Never stored: the quarantine
-- keeps only its keyed hash (audit.row_issue.record_key, below). The one definition: the gate
-- (hdp.quality.gate) and dbt's published_rows() both match rows with it, so a composite key
-- means the same on both sides. Inlined by PostgreSQL (plain SQL, stable).
create or replace function audit.record_key(variadic parts text[]) returns text
language sql stable parallel safe
return array_to_json(parts)::text;

-- The rows held in quarantine: a row-level check with severity quarantine failed them, and no
-- replay released them since. The one definition of the predicate: the gate leaves these rows
-- out of its checks and counts, dbt's published_rows() leaves them out of staging. Invoker's
-- rights: whoever reads it needs select on audit.row_issue (the loader and the transformer).
create or replace view audit.quarantined_row with (security_invoker = true) as
select
    issue.issue_id,
    issue.batch_id,
    issue.source,
    issue.table_name,
    issue.record_key,
    issue.check_id
from audit.row_issue as issue
where issue.action = 'quarantine' and issue.released_at is null;

-- ---------------------------------------------------------------------------------------------
-- Keys without identifiers (issue 15; hdp.quality.record_keys, docs/security.md). A key can hold
-- an identifier (a social-security card number in an export without a sale id) or free text (a
-- drug name): audit.row_issue.record_key holds every key only as an HMAC-SHA256 under a secret
-- of its own, never in clear, and row_issue.key_columns names the columns it was taken from, so
-- a manifest whose key changed later still finds its quarantined rows.
-- ---------------------------------------------------------------------------------------------

-- The columns each issue's key was built from (the table's manifest key when it was recorded).
alter table audit.row_issue add column if not exists key_columns text[];

-- The record-key secret: generated here, in the database, once; never rotated (the pseudonym
-- key rotates, and a rotation would lose every quarantined row), never in a file, SQL text or
-- log. Only the owner reads it (hdp_private), through the functions below.
create table if not exists hdp_private.record_key_secret (
    id boolean primary key default true check (id),
    key_bytes bytea not null,
    created_at timestamptz not null default now()
);
insert into hdp_private.record_key_secret (key_bytes)
values (public.gen_random_bytes(32))
on conflict (id) do nothing;

-- The keyed hash of a row's key (audit.record_key() text) in one source table: hex HMAC-SHA256
-- of 'source.table:key' under `secret`. Owner only (called by the functions below, which run as
-- the owner): no service login can hash a value of its choosing and look it up in
-- audit.row_issue. Plain SQL, stable like convert_to(): PostgreSQL inlines it (no function call
-- per row, ~1 µs a row); the functions below read the secret once per call and pass it.
create or replace function hdp_private.record_key_hmac_with(
    secret bytea, source text, table_name text, record_key text
) returns text
language sql stable parallel safe
return encode(
    public.hmac(convert_to(source || '.' || table_name || ':' || record_key, 'UTF8'), secret, 'sha256'),
    'hex'
);
revoke all on function hdp_private.record_key_hmac_with(bytea, text, text, text) from public;

-- The same under the record-key secret (owner only: set-up's migration, an administrator).
create or replace function hdp_private.record_key_hmac(
    source text, table_name text, record_key text
) returns text
language sql stable parallel safe
return hdp_private.record_key_hmac_with(
    (select s.key_bytes from hdp_private.record_key_secret as s), source, table_name, record_key
);
revoke all on function hdp_private.record_key_hmac(text, text, text) from public;

-- 'r.col1::text, r.col2::text' of key columns, each a quoted identifier.
create or replace function audit.key_columns_sql(key_columns text[]) returns text
language sql immutable parallel safe
return (
    select string_agg(format('r.%I::text', c), ', ' order by n)
    from unnest(key_columns) with ordinality as k (c, n)
);

-- The gate's hashes (loader only): for the given keys (audit.record_key() text) of rows of one
-- batch of raw_<source>.<table>, each key and its keyed hash. Only keys a row of the batch has
-- are hashed, so the function is no oracle for values of the caller's choosing. The landing
-- table belongs to the loader: checked a plain table of built-in types, locked, read with
-- row_security off (audit.require_plain_table).
create or replace function audit.record_key_hashes(
    source text, table_name text, key_columns text[], batch_id bigint, record_keys text[]
) returns table (record_key text, key_hash text)
language plpgsql stable security definer
set search_path = pg_catalog
set row_security = off
as $$
declare
    relation text := format('%I.%I', 'raw_' || source, table_name);
    secret bytea := (select s.key_bytes from hdp_private.record_key_secret as s);
begin
    perform audit.require_plain_table(relation);
    return query execute format(
        'select distinct k.record_key, hdp_private.record_key_hmac_with($5, $1, $2, k.record_key) '
        'from (select audit.record_key(%s) as record_key from %s as r where r._batch_id = $3) '
        'as k where k.record_key in (select unnest($4))',
        audit.key_columns_sql(key_columns), relation
    ) using source, table_name, batch_id, record_keys, secret;
end
$$;
revoke all on function audit.record_key_hashes(text, text, text[], bigint, text[]) from public;

-- The rows behind row issues: for each of the given issues of raw_<source>.<table>, the batch
-- and the key (audit.record_key() text, under the caller's `key_columns`) of every landed row
-- whose keyed hash under the issue's own key_columns is the issue's. The gate, replay and dbt's
-- staging match rows with it; its callers (loader, transformer) read the landing table anyway.
-- A row's hash is computed once per call (a hash join), only for batches with such issues.
-- A hash join (enable_nestloop off): each landed row's hash is computed once, never once per
-- (row, issue) pair, whatever the planner guesses of the issues' count.
create or replace function audit.issue_keys(
    source text, table_name text, key_columns text[], issue_ids bigint[]
) returns table (issue_id bigint, batch_id bigint, record_key text)
language plpgsql stable security definer
set search_path = pg_catalog
set row_security = off
set enable_nestloop = off
as $$
declare
    relation text := format('%I.%I', 'raw_' || source, table_name);
    issue_columns text[];
    batches bigint[];
    secret bytea := (select s.key_bytes from hdp_private.record_key_secret as s);
begin
    if coalesce(cardinality(issue_ids), 0) = 0 then
        return;
    end if;
    perform audit.require_plain_table(relation);
    for issue_columns in
        select distinct i.key_columns from audit.row_issue as i
        where i.issue_id = any(issue_ids) and i.source = $1 and i.table_name = $2
            and cardinality(i.key_columns) > 0
    loop
        batches := array(
            select distinct i.batch_id from audit.row_issue as i
            where i.issue_id = any(issue_ids) and i.key_columns = issue_columns
        );
        return query execute format(
            'select i.issue_id, i.batch_id, h.record_key from audit.row_issue as i '
            'inner join (select r._batch_id, audit.record_key(%s) as record_key, '
            'hdp_private.record_key_hmac_with($6, $3, $4, audit.record_key(%s)) as key_hash '
            'from %s as r where r._batch_id = any($5)) as h '
            'on h._batch_id = i.batch_id and h.key_hash = i.record_key '
            'where i.issue_id = any($1) and i.key_columns = $2',
            audit.key_columns_sql(key_columns), audit.key_columns_sql(issue_columns), relation
        ) using issue_ids, issue_columns, source, table_name, batches, secret;
    end loop;
end
$$;
revoke all on function audit.issue_keys(text, text, text[], bigint[]) from public;

-- The rows of raw_<source>.<table> held in quarantine (audit.quarantined_row), keyed by the
-- caller's key columns: the one predicate the gate and dbt's published_rows() leave out.
create or replace function audit.quarantined_keys(
    source text, table_name text, key_columns text[]
) returns table (issue_id bigint, batch_id bigint, record_key text)
language sql stable
set search_path = pg_catalog
as $$
    select k.issue_id, k.batch_id, k.record_key
    from audit.issue_keys(
        $1, $2, $3,
        array(
            select q.issue_id from audit.quarantined_row as q
            where q.source = $1 and q.table_name = $2
        )
    ) as k
$$;
revoke all on function audit.quarantined_keys(text, text, text[]) from public;

-- ---------------------------------------------------------------------------------------------
-- File sources (issue 3; hdp.filedrop): the LIS's daily CSV drops.
-- ---------------------------------------------------------------------------------------------

-- One row per distinct file content (sha256) a file source delivered: loaded once, whatever its
-- name; the same name with other bytes is a new delivery. status: loading | loaded (its batch
-- then goes through the gate and publish in audit.load_batch) | refused (undecodable or
-- another header: nothing of it is loaded, error says why).
create table if not exists audit.file_load (
    file_load_id bigserial primary key,
    source text not null,
    file_name text not null,
    sha256 text not null,
    batch_id bigint references audit.load_batch (batch_id),
    encoding text,
    rows bigint,
    rows_malformed bigint,
    status text not null check (status in ('loading', 'loaded', 'refused')),
    error text,
    loaded_at timestamptz not null default now(),
    unique (source, sha256)
);

-- The refused deliveries as the Data quality page and the run summary show them: which file of
-- which source, when, and the refusal's reason (it names fields and lines, never a value). Not
-- security_invoker: the page's login (hdp_quality_reader) reads this view and not
-- audit.file_load (content digests, batch links).
create or replace view audit.refused_file as
select
    file.source,
    file.file_name,
    file.error as reason,
    file.loaded_at as refused_at
from audit.file_load as file
where file.status = 'refused';

-- Landing tables of file sources (raw_<source>.<table>) are not written here: set-up creates
-- them from their manifests (dags/sources/<source>.yml; hdp.ingest.files.ensure_landing_tables).

-- Every transform run that built and tested every model (hdp.warehouse.builds): what it read.
-- A transform whose inputs (published batches, released quarantine, the dbt project, the day)
-- match the last complete build's has nothing to do and skips its dbt tasks.
create table if not exists audit.transform_build (
    build_id bigserial primary key,
    run_id text not null,
    inputs text not null,
    fingerprint text not null,
    finished_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------------
-- Column profiles and the delivery guard (issue 15 items 3 and 4; hdp.quality.profiles, guard).
-- ---------------------------------------------------------------------------------------------

-- One row per batch and column: statistics of what arrived, never a row's value where it could
-- identify someone (is_identifier: min, max and years are null; only shapes and counts). A
-- shape writes digit runs 9, letter runs a, other scripts z (`2018-01-01` is `9-9-9`).
create table if not exists audit.column_profile (
    batch_id bigint not null references audit.load_batch (batch_id),
    source text not null,
    table_name text not null,
    column_name text not null,
    rows bigint not null,
    nulls bigint not null,
    distinct_count bigint not null,
    min_length integer,
    max_length integer,
    avg_length double precision,
    top_shape text,
    top_shape_share double precision,
    pattern text,
    pattern_share double precision,
    dated_share double precision,
    year_min integer,
    year_median integer,
    year_max integer,
    min_value text,
    max_value text,
    is_identifier boolean not null,
    profiled_at timestamptz not null default now(),
    primary key (batch_id, column_name)
);
create index if not exists column_profile_table_idx
on audit.column_profile (source, table_name, column_name, batch_id);

-- A delivery held for review (status held in audit.load_batch): it would replace published
-- versions of many keys with values of another shape. Neither published nor lost: a person
-- releases (the batch becomes passed, the next publish promotes it) or rejects it.
create table if not exists audit.held_delivery (
    batch_id bigint primary key references audit.load_batch (batch_id),
    source text not null,
    table_name text not null,
    file_name text,
    rows bigint not null,
    keys_replaced bigint not null,
    reason text not null,
    held_at timestamptz not null default now(),
    decision text check (decision in ('released', 'rejected')),
    decided_at timestamptz,
    decided_by text
);

-- An earlier good file the operator re-admits (`python -m hdp files readmit`): its content is
-- loaded again as a new delivery on the next run (readmitted), and then bypasses the guard.
alter table audit.file_load add column if not exists readmitted_at timestamptz;
alter table audit.file_load add column if not exists readmitted_by text;
alter table audit.file_load drop constraint if exists file_load_status_check;
alter table audit.file_load add constraint file_load_status_check check (
    status in ('loading', 'loaded', 'refused', 'readmitted')
);
