-- The HIS's doctors as standard practitioners (std_practitioner): one row per doctor_id. The
-- name is staff personal data no model needs (analyses go by the key): it stops at staging.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

doctors as (
    select * from {{ ref('stg_his__doctors') }}
),

final as (
    select
        {{ standard_key('doctors.doctor_id::text') }} as practitioner_key,
        source_system.institution_id,
        source_system.source_system,
        doctors.doctor_id::text as source_record_id,
        {{ standard_key('doctors.dept_code') }} as organisation_unit_key,
        doctors.dept_code as local_unit_code,
        doctors.title,
        doctors.sex,
        doctors.hired_on,
        doctors.left_on,
        doctors.updated_at,
        doctors.data_source
    from doctors
    cross join source_system
)

select * from final
