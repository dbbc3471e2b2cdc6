{#- Audit: one row per model build in audit.transform_run (who built what, when, how many
    rows), as a post-hook. The login (session_user) is recorded, not a role it switched to.

    Shrink guard: before recording, the build is compared with the model's last recorded
    build. A table that would lose more than var('max_mart_shrink_share') of its rows (and had
    at least var('shrink_guard_min_rows')) raises, and the post-hook runs inside the model's
    transaction, so the build rolls back: the published table stays as it was, the models
    downstream are skipped and the run fails naming the table. An intended shrink (a source
    purged on purpose) is accepted for one run with var('allow_mart_shrink') (the transform
    DAG's param allow_shrink). -#}
{% macro record_transform() -%}
    {%- set allowed = var('allow_mart_shrink', false) | string | lower in ['true', '1', 'yes'] -%}
    {%- set share = var('max_mart_shrink_share') | float -%}
    {%- set min_rows = var('shrink_guard_min_rows') | int -%}
    {%- set model = this.schema ~ '.' ~ this.identifier -%}
    {%- if not allowed and share < 1 %}
    do $shrink_guard$
    declare
        previous bigint;
        now_rows bigint;
    begin
        select transform_run.row_count into previous
        from audit.transform_run as transform_run
        where transform_run.model = '{{ model }}'
        order by transform_run.transform_id desc
        limit 1;
        select count(*) into now_rows from {{ this }};
        if previous >= {{ min_rows }} and now_rows < previous * (1 - {{ share }}) then
            raise exception using
                errcode = 'check_violation',
                message = format(
                    'shrink guard: %s would shrink from %s to %s rows (more than %s%% lost); '
                    'the build is rolled back and the published table is unchanged',
                    '{{ model }}', previous, now_rows, {{ share * 100 }}
                ),
                hint = 'Look for a source batch that was emptied or a gate that withheld data '
                    '(audit.load_batch, the Data quality page). If the shrink is intended, '
                    'trigger hdp_transform with allow_shrink on (dbt --vars allow_mart_shrink: true).';
        end if;
    end
    $shrink_guard$;
    {%- endif %}
    insert into audit.transform_run (invocation_id, model, row_count, built_by)
    select
        '{{ invocation_id }}',
        '{{ model }}',
        count(*),
        session_user
    from {{ this }}
{%- endmacro %}
