{{ config(post_hook="{{ record_transform() }}") }}

-- One row per doctor, plus the unknown member (-1). Names are staff personal data and no
-- report needs them: analyses go by doctor_key, and the HIS resolves a doctor_id when needed.
with

doctors as (
    select
        source_record_id::int as doctor_id,
        practitioner_key,
        institution_id,
        local_unit_code as dept_code,
        title,
        hired_on,
        left_on,
        data_source
    from {{ ref('std_practitioner') }}
    where source_system = 'his'
),

departments as (
    select local_unit_code as dept_code
    from {{ ref('std_organisation_unit') }}
    where source_system = 'his'
),

known as (
    select
        doctors.doctor_id as doctor_key,
        doctors.doctor_id,
        doctors.institution_id,
        doctors.practitioner_key as standard_practitioner_key,
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
        null::text as institution_id,
        null::text as standard_practitioner_key,
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
