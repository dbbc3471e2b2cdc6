{#- Incremental facts (fct_encounter, fct_diagnosis) rebuild only the rows whose inputs changed
    since their last build, less a reprocessing window for late data:
      reprocess_since()  the last successful build of this model (audit.transform_run), minus
                         var('reprocess_window_hours') (dbt_project.yml: the environment's
                         HDP_REPROCESS_WINDOW_HOURS, else 24). A batch whose publish transaction began
                         before the build but committed after it is caught by the window; a
                         model never built incrementally starts from -infinity.
      keys_published_since(source, table, key, since)
                         keys of a raw table with a version published since `since`, or with a
                         quarantined row released (python -m hdp quality replay) since then. -#}
{% macro reprocess_since() -%}
    (
        select
            coalesce(max(transform_run.built_at), '-infinity'::timestamptz)
            - interval '{{ var("reprocess_window_hours") | float }} hours'
        from {{ source('audit', 'transform_run') }} as transform_run
        where transform_run.model = '{{ this.schema }}.{{ this.identifier }}'
    )
{%- endmacro %}


{% macro keys_published_since(source_name, table_name, key, since) -%}
    select loaded.{{ key }} as changed_key
    from {{ source(source_name, table_name) }} as loaded
    where loaded._batch_id in (
        select batch.batch_id
        from {{ source('audit', 'load_batch') }} as batch
        where
            batch.source = '{{ source_name | replace("raw_", "") }}'
            and batch.table_name = '{{ table_name }}'
            and batch.status = 'published'
            and batch.published_at >= {{ since }}
    )
    union
    select loaded.{{ key }} as changed_key
    from {{ source(source_name, table_name) }} as loaded
    inner join {{ source('audit', 'row_issue') }} as issue
        on
            loaded._batch_id = issue.batch_id
            and issue.table_name = '{{ table_name }}'
            and issue.record_key = loaded.{{ key }}::text
    where issue.released_at >= {{ since }}
{%- endmacro %}


{#- Post-hook of an incremental fact: delete the rows whose key its input no longer has (a visit
    that turned out to be a re-sent copy of another). Deletes nothing after a full build. -#}
{% macro delete_vanished_rows(key, relation) -%}
    delete from {{ this }} as kept
    where not exists (
        select 1 from {{ relation }} as current_rows
        where current_rows.{{ key }} = kept.{{ key }}
    )
{%- endmacro %}
