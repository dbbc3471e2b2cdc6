{#- Rows of `source_relation` that belong to a batch the quality gate passed.
    The extractor appends every batch to raw_his first and records it in audit.load_batch;
    a batch still loading, rejected or failed must never be published. -#}
{% macro accepted_batches(source_relation) -%}
    select loaded.*
    from {{ source_relation }} as loaded
    where exists (
        select 1
        from {{ source('audit', 'load_batch') }} as batch
        where
            batch.batch_id = loaded._batch_id
            and batch.status = 'passed'
    )
{%- endmacro %}
