{{ config(post_hook="{{ record_transform() }}") }}

-- One row per doctor, plus the unknown member (-1). Names are staff personal data and no
-- report needs them: analyses go by doctor_key, and the HIS resolves a doctor_id when needed.
with

doctors as (
    select * from {{ ref('stg_his__doctors') }}
),

departments as (
    select * from {{ ref('stg_his__departments') }}
),

known as (
    select
        doctors.doctor_id as doctor_key,
        doctors.doctor_id,
        doctors.title,
        coalesce(departments.dept_code, '-1') as department_key,
        departments.dept_code is null as has_unknown_department,
        doctors.hired_on,
        doctors.left_on,
        coalesce(doctors.left_on > current_date, true) as is_active,
        false as is_unknown_member,
        doctors.data_source
    from doctors
    left join departments on doctors.dept_code = departments.dept_code
),

unknown_member as (
    select
        -1 as doctor_key,
        null::int as doctor_id,
        'unknown' as title,
        '-1' as department_key,
        true as has_unknown_department,
        null::date as hired_on,
        null::date as left_on,
        false as is_active,
        true as is_unknown_member,
        null::text as data_source
)

select * from known
union all
select * from unknown_member
