{{ config(post_hook="{{ record_transform() }}") }}

-- One row per department (科室), with its division (the parent), plus the unknown member '-1'.
with

departments as (
    select
        local_unit_code as dept_code,
        organisation_unit_key,
        institution_id,
        unit_name as dept_name,
        local_parent_unit_code as parent_dept_code,
        unit_type as dept_type,
        is_active,
        data_source
    from {{ ref('std_organisation_unit') }}
    where source_system = 'his'
),

known as (
    select
        departments.dept_code as department_key,
        departments.dept_code,
        departments.institution_id,
        departments.organisation_unit_key as standard_organisation_unit_key,
        departments.dept_name,
        case
            when departments.dept_type = 'division' then departments.dept_code
            else departments.parent_dept_code
        end as division_code,
        case
            when departments.dept_type = 'division' then departments.dept_name
            else divisions.dept_name
        end as division_name,
        departments.dept_type,
        departments.is_active,
        false as is_unknown_member,
        departments.data_source
    from departments
    left join departments as divisions
        on departments.parent_dept_code = divisions.dept_code
),

unknown_member as (
    select
        '-1' as department_key,
        null::text as dept_code,
        null::text as institution_id,
        null::text as standard_organisation_unit_key,
        'unknown' as dept_name,
        null::text as division_code,
        null::text as division_name,
        'unknown' as dept_type,
        false as is_active,
        true as is_unknown_member,
        null::text as data_source
)

select * from known
union all
select * from unknown_member
