{#- Audit: one row per model build in audit.transform_run (who built what, when, how many
    rows), as a post-hook. The login (session_user) is recorded, not a role it switched to. -#}
{% macro record_transform() -%}
    insert into audit.transform_run (invocation_id, model, row_count, built_by)
    select
        '{{ invocation_id }}',
        '{{ this.schema }}.{{ this.identifier }}',
        count(*),
        session_user
    from {{ this }}
{%- endmacro %}
