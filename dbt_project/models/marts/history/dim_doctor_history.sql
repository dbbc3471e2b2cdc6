{{ config(post_hook="{{ record_transform() }}") }}

-- Type-2 doctor dimension: one row per period in which a doctor held the same title in the
-- same department (valid_from <= t < valid_to), plus the unknown member '-1'. Facts carry the
-- doctor_version_key valid at their time; doctor_key (= dim_doctor) stays the durable key for
-- "as today" roll-ups.
with

history as (
    select * from {{ ref('int_history__doctors') }}
),

departments as (
    select local_unit_code as dept_code
    from {{ ref('std_organisation_unit') }}
    where source_system = 'his'
),

known as (
    select
        history.version_key as doctor_version_key,
        history.doctor_id as doctor_key,
        history.title,
        coalesce(departments.dept_code, '-1') as department_key,
        history.version_number,
        history.valid_from,
        history.valid_to,
        history.is_current,
        false as is_unknown_member
    from history
    left join departments on history.dept_code = departments.dept_code
),

unknown_member as (
    select
        '-1' as doctor_version_key,
        -1 as doctor_key,
        'unknown' as title,
        '-1' as department_key,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current,
        true as is_unknown_member
)

select * from known
union all
select * from unknown_member
