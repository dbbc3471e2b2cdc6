{#- Row-level security on a mart (a post-hook: dbt's table rebuild creates a new table, which
    has no policy, so the policies are created again after every build; an incremental model's
    are replaced). Group analysts, the transformer and administrators read every row.
    A department-level analyst (hdp_dept_analyst) reads the rows of the departments mapped to
    their login in audit.analyst_department; `predicate`: those rows, the department_key column
    by default. A hospital's analyst (hdp_institution_analyst) reads the rows of the
    institutions mapped to their login in audit.analyst_institution; `institution_predicate`:
    those rows, by default the institution_id column, and none at all when the model has no
    institution_id (a model must say whose rows it holds before a hospital may read it).
    The table owner (the platform's service login) is not subject to policies. -#}
{% macro enable_department_rls(predicate=none, institution_predicate=none) -%}
    {%- set own_departments -%}
        department_key in (
            select analyst_department.dept_code from audit.analyst_department
            where analyst_department.role_name = current_user
        )
    {%- endset -%}
    {%- set own_institutions -%}
        {%- if 'institution_id' in model.columns -%}
            institution_id in (
                select analyst_institution.institution_id from audit.analyst_institution
                where analyst_institution.role_name = current_user
            )
        {%- else -%}
            false
        {%- endif -%}
    {%- endset -%}
    alter table {{ this }} enable row level security;
    -- an incremental model keeps its table, and its policies, from run to run
    drop policy if exists all_departments on {{ this }};
    drop policy if exists own_departments on {{ this }};
    drop policy if exists own_institutions on {{ this }};
    create policy all_departments on {{ this }} for select
        to hdp_analyst, hdp_transformer, hdp_admin using (true);
    create policy own_departments on {{ this }} for select
        to hdp_dept_analyst using ({{ predicate or own_departments }});
    create policy own_institutions on {{ this }} for select
        to hdp_institution_analyst using ({{ institution_predicate or own_institutions }})
{%- endmacro %}


{#- Row-level security by institution only, for a fact or mart without department rows (purchases,
    stock, the drug classifications): every reader sees every row as before, except a
    hospital's analyst (hdp_institution_analyst), who sees the rows of their institutions (none
    when the model has no institution_id yet). Called in the model's config (models/marts/pharmacy, analysis). -#}
{% macro enable_institution_rls() -%}
    {%- set own_institutions -%}
        {%- if 'institution_id' in model.columns -%}
            institution_id in (
                select analyst_institution.institution_id from audit.analyst_institution
                where analyst_institution.role_name = current_user
            )
        {%- else -%}
            false
        {%- endif -%}
    {%- endset -%}
    alter table {{ this }} enable row level security;
    drop policy if exists all_rows on {{ this }};
    drop policy if exists own_institutions on {{ this }};
    create policy all_rows on {{ this }} for select
        to hdp_analyst, hdp_dept_analyst, hdp_transformer, hdp_admin, hdp_quality_reader
        using (true);
    create policy own_institutions on {{ this }} for select
        to hdp_institution_analyst using ({{ own_institutions }})
{%- endmacro %}
