{#- Rows of a raw table that are published: their batch passed the quality gate and was
    promoted with the rest of its run (write-audit-publish: status 'published' in
    audit.load_batch), and the row is not held in quarantine by a row-level check
    (audit.row_issue; `python -m hdp quality replay` releases rows after a fix).
    `source_name`, `table_name`: the raw table (source('raw_<source>', table)); `key`: the
    primary key column the gate recorded the row under. -#}
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
            from {{ source('audit', 'row_issue') }} as issue
            where
                issue.batch_id = loaded._batch_id
                and issue.table_name = '{{ table_name }}'
                and issue.record_key = loaded.{{ key }}::text
                and issue.action = 'quarantine'
                and issue.released_at is null
        )
{%- endmacro %}
