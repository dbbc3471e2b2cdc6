{#- Rows of a raw table that are published: their batch passed the quality gate and was
    promoted with the rest of its run (write-audit-publish: status 'published' in
    audit.load_batch), and the row is not held in quarantine (audit.quarantined_row, the one
    definition the gate uses too; `python -m hdp quality replay` releases rows after a fix).
    `source_name`, `table_name`: the raw table (source('raw_<source>', table)); `key`: the
    primary key the gate recorded the row under, a column or a list of columns (a composite
    key, as in the source's manifest). -#}
{% macro published_rows(source_name, table_name, key) -%}
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
            from {{ source('audit', 'quarantined_row') }} as quarantined
            where
                quarantined.batch_id = loaded._batch_id
                and quarantined.table_name = '{{ table_name }}'
                and quarantined.record_key = {{ record_key('loaded', key) }}
        )
{%- endmacro %}


{#- The text key audit.row_issue records a row under: audit.record_key() of the key columns
    (one definition, in the warehouse: plugins/hdp/warehouse/schema.sql). `key`: a column name
    or a list of them; `relation`: the alias the columns belong to. -#}
{% macro record_key(relation, key) -%}
    {%- set columns = [key] if key is string else key -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- set _ = parts.append(relation ~ '.' ~ column ~ '::text') -%}
    {%- endfor -%}
    audit.record_key({{ parts | join(', ') }})
{%- endmacro %}
