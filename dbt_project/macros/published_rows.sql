{#- Rows of a raw table that are published: their batch passed the quality gate and was
    promoted with the rest of its run (write-audit-publish: status 'published' in
    audit.load_batch), and the row is not held in quarantine (audit.quarantined_keys(), the one
    definition the gate uses too; `python -m hdp quality replay` releases rows after a fix).
    `source_name`, `table_name`: the raw table (source('raw_<source>', table)); its key is the
    manifest's (manifest_key()), never typed here. The quarantine holds keys as keyed hashes
    only: audit.quarantined_keys() finds the rows behind them, under the key columns each issue
    was recorded with, so a manifest whose key changed since still leaves them out. -#}
{% macro published_rows(source_name, table_name) -%}
    {#- linted offline (sqlfluff), a stand-in key -#}
    {%- set key = (['_batch_id'] if sqlfluff_offline is defined else manifest_key(source_name, table_name)) -%}
    select loaded.*
    from {{ source(source_name, table_name) }} as loaded
    where
        exists (
            select 1
            from {{ source('audit', 'load_batch') }} as batch
            where
                batch.batch_id = loaded._batch_id
                and batch.status = 'published'
        )
        and not exists (
            select 1
            from {{ source('audit', 'quarantined_row') }} as held
            inner join {{ quarantined_keys(source_name, table_name) }} as quarantined
                on held.issue_id = quarantined.issue_id
            where
                quarantined.batch_id = loaded._batch_id
                and quarantined.record_key = {{ record_key('loaded', key) }}
        )
{%- endmacro %}


{#- The key columns of a raw table, from its source's manifest (dags/sources/<source>.yml, passed
    by hdp.runtime.standard in HDP_SOURCE_KEYS): a list of column names. A table the manifests
    do not name, or a run without the variable, fails the compilation. -#}
{% macro manifest_key(source_name, table_name) -%}
    {%- set raw = env_var('HDP_SOURCE_KEYS', '') -%}
    {%- set known = raw and (fromjson(raw).get(source_name | replace('raw_', '', 1)) or {}).get(table_name) -%}
    {%- if not execute and not known -%}
        {#- parsing (dbt parse, Cosmos's dbt ls) renders no SQL: the check runs at compile time -#}
        {{ return(['_batch_id']) }}
    {%- endif -%}
    {%- if not raw -%}
        {{ exceptions.raise_compiler_error("HDP_SOURCE_KEYS is not set: run dbt through `python -m hdp dbt <args>` (it reads every table's key from dags/sources, hdp.runtime.standard)") }}
    {%- endif -%}
    {%- set keys = fromjson(raw) -%}
    {%- set source_id = source_name | replace('raw_', '', 1) -%}
    {%- set key = (keys.get(source_id) or {}).get(table_name) -%}
    {%- if not key -%}
        {{ exceptions.raise_compiler_error(source_name ~ "." ~ table_name ~ ": no key in the manifests (dags/sources/" ~ source_id ~ ".yml names no such table with a primary_key): declare the table and its key there") }}
    {%- endif -%}
    {{ return(key) }}
{%- endmacro %}


{#- The rows held in quarantine of a raw table, keyed as record_key() keys them:
    audit.quarantined_keys() with the manifest's key columns. -#}
{% macro quarantined_keys(source_name, table_name) -%}
    {%- set source_id = source_name | replace('raw_', '', 1) -%}
    audit.quarantined_keys('{{ source_id }}', '{{ table_name }}', {{ key_columns_array((['_batch_id'] if sqlfluff_offline is defined else manifest_key(source_name, table_name))) }})
{%- endmacro %}


{#- The rows behind the row issues released since `since` (python -m hdp quality replay), keyed
    as record_key() keys them. -#}
{% macro released_keys(source_name, table_name, since) -%}
    {%- set source_id = source_name | replace('raw_', '', 1) -%}
    audit.issue_keys(
        '{{ source_id }}',
        '{{ table_name }}',
        {{ key_columns_array((['_batch_id'] if sqlfluff_offline is defined else manifest_key(source_name, table_name))) }},
        array(
            select released.issue_id
            from {{ source('audit', 'row_issue') }} as released
            where
                released.source = '{{ source_id }}'
                and released.table_name = '{{ table_name }}'
                and released.released_at >= {{ since }}
        )
    )
{%- endmacro %}


{#- Key columns as a text[] literal. -#}
{% macro key_columns_array(key) -%}
    {%- set quoted = [] -%}
    {%- for column in key -%}
        {%- set _ = quoted.append("'" ~ (column | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    array[{{ quoted | join(', ') }}]::text[]
{%- endmacro %}


{#- A row's key in clear, as the warehouse's audit.record_key() writes it (one definition:
    plugins/hdp/warehouse/schema.sql); never stored. `key`: a column name or a list of them;
    `relation`: the alias the columns belong to. Each column is quoted (a manifest's column
    may be named in Chinese). -#}
{% macro record_key(relation, key) -%}
    {%- set columns = [key] if key is string else key -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- set _ = parts.append(relation ~ '.' ~ quoted_column(column) ~ '::text') -%}
    {%- endfor -%}
    audit.record_key({{ parts | join(', ') }})
{%- endmacro %}


{#- A column name as a quoted PostgreSQL identifier. -#}
{% macro quoted_column(column) -%}
    "{{ column | replace('"', '""') }}"
{%- endmacro %}
