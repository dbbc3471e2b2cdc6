{#- Row-level security on a mart (a post-hook: dbt's table rebuild creates a new table, which
    has no policy, so the policies are created again after every build; an incremental model's
    are replaced). Analysts, the
    transformer and administrators read every row; a department-level analyst (hdp_dept_analyst)
    reads the rows of the departments mapped to their login in audit.analyst_department.
    `predicate`: the rows a department analyst may see; defaults to the department_key column.
    The table owner (the platform's service login) is not subject to policies. -#}
{% macro enable_department_rls(predicate=none) -%}
    {%- set own_departments -%}
        department_key in (
            select analyst_department.dept_code from audit.analyst_department
            where analyst_department.role_name = current_user
        )
    {%- endset -%}
    alter table {{ this }} enable row level security;
    -- an incremental model keeps its table, and its policies, from run to run
    drop policy if exists all_departments on {{ this }};
    drop policy if exists own_departments on {{ this }};
    create policy all_departments on {{ this }} for select
        to hdp_analyst, hdp_transformer, hdp_admin using (true);
    create policy own_departments on {{ this }} for select
        to hdp_dept_analyst using ({{ predicate or own_departments }})
{%- endmacro %}
