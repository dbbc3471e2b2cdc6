{{ config(post_hook="{{ record_transform() }}") }}

-- Type-2 department dimension: one row per period in which a department kept its name,
-- division, type and status (valid_from <= t < valid_to), plus the unknown member '-1'.
-- department_key (= dim_department) is the durable key.
with

history as (
    select * from {{ ref('int_history__departments') }}
),

known as (
    select
        version_key as department_version_key,
        dept_code as department_key,
        dept_name,
        case when dept_type = 'division' then dept_code else parent_dept_code end as division_code,
        dept_type,
        is_active,
        version_number,
        valid_from,
        valid_to,
        is_current,
        false as is_unknown_member
    from history
),

unknown_member as (
    select
        '-1' as department_version_key,
        '-1' as department_key,
        'unknown' as dept_name,
        null::text as division_code,
        'unknown' as dept_type,
        false as is_active,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current,
        true as is_unknown_member
)

select * from known
union all
select * from unknown_member
