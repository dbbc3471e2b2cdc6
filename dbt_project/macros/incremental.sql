{#- Incremental facts. fct_encounter and fct_diagnosis rebuild only the rows whose inputs changed
    since their last build, less a reprocessing window for late data:
      reprocess_since()  the last successful build of this model (audit.transform_run), minus
                         var('reprocess_window_hours') (dbt_project.yml: the environment's
                         HDP_REPROCESS_WINDOW_HOURS, else 24). A batch whose publish transaction began
                         before the build but committed after it is caught by the window; a
                         model never built incrementally starts from -infinity.
      keys_published_since(source, table, since)
                         keys of a raw table (its manifest's key: manifest_key()) with a version
                         published since `since`, or with a quarantined row released (python -m
                         hdp quality replay) since then (released_keys(), macros/published_rows.sql).
    The facts fed by intermediate tables rebuilt in full (fct_prescription_line, fct_dispensing,
    fct_lab_result) compare instead: with_row_hash() gives each row an md5 of its values and
    only_changed_rows() keeps the rows that are new or whose hash differs from the stored row's.
    Exactly the rows a full refresh would change are written; no window is needed. -#}
{% macro reprocess_since() -%}
    (
        select
            coalesce(max(transform_run.built_at), '-infinity'::timestamptz)
            - interval '{{ var("reprocess_window_hours") | float }} hours'
        from {{ source('audit', 'transform_run') }} as transform_run
        where transform_run.model = '{{ this.schema }}.{{ this.identifier }}'
    )
{%- endmacro %}


{% macro keys_published_since(source_name, table_name, since) -%}
    {%- set key = (['_batch_id'] if sqlfluff_offline is defined else manifest_key(source_name, table_name)) -%}
    {%- if key | length != 1 -%}
        {{ exceptions.raise_compiler_error("keys_published_since(" ~ source_name ~ ", " ~ table_name ~ "): a key of one column is needed, the manifest's is " ~ (key | join(', '))) }}
    {%- endif -%}
    select loaded.{{ quoted_column(key[0]) }} as changed_key
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
    select loaded.{{ quoted_column(key[0]) }} as changed_key
    from {{ source(source_name, table_name) }} as loaded
    inner join {{ released_keys(source_name, table_name, since) }} as released
        on
            loaded._batch_id = released.batch_id
            and released.record_key = {{ record_key('loaded', key) }}
{%- endmacro %}


{#- Post-hook of an incremental fact: delete the rows whose key its input no longer has (a visit
    that turned out to be a re-sent copy of another). Deletes nothing after a full build.
    `input_key` names the key in `relation` when it differs from the fact's. -#}
{% macro delete_vanished_rows(key, relation, input_key=none) -%}
    delete from {{ this }} as kept
    where not exists (
        select 1 from {{ relation }} as current_rows
        where current_rows.{{ input_key or key }} = kept.{{ key }}
    )
{%- endmacro %}


{#- The rows of `relation` with row_hash, an md5 of all their values (the build time left out),
    and transformed_at. -#}
{% macro with_row_hash(relation) -%}
    select
        {{ relation }}.*,
        md5({{ relation }}::text) as row_hash,
        now() as transformed_at
    from {{ relation }}
{%- endmacro %}


{#- The rows of `relation` (built with with_row_hash) that an incremental run writes: those whose
    key the fact lacks or whose row_hash differs; all of them when the table has no row_hash
    yet (built before it existed). A change of the model's logic that changes values is picked up the same way,
    without a full refresh. Call it under the model's own `{% if is_incremental() %}` (a unit
    test replaces is_incremental only there); a full build selects every row. -#}
{% macro only_changed_rows(relation, key) -%}
    {%- set kept_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list
        if execute else ['row_hash'] -%}
    {%- if 'row_hash' in kept_columns -%}
        select candidate.*
        from {{ relation }} as candidate
        left join {{ this }} as kept on candidate.{{ key }} = kept.{{ key }}
        where kept.{{ key }} is null or kept.row_hash is distinct from candidate.row_hash
    {%- else -%}
        {#- built before row_hash existed: on_schema_change adds it, every row is rewritten -#}
        select * from {{ relation }}
    {%- endif %}
{%- endmacro %}


{#- The version key of a type-2 period: stable across rebuilds of the same history. -#}
{% macro version_key(key, valid_from) -%}
    md5({{ key }}::text || '|' || {{ valid_from }}::text)
{%- endmacro %}
