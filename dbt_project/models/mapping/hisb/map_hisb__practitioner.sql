-- Hospital B's doctors (ysxx) as standard practitioners; it records no hiring or leaving dates.
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

doctors as (
    select * from {{ ref('stg_hisb__doctors') }}
),

final as (
    select
        {{ standard_key('doctors.doctor_code') }} as practitioner_key,
        source_system.institution_id,
        source_system.source_system,
        doctors.doctor_code as source_record_id,
        {{ standard_key('doctors.dept_code') }} as organisation_unit_key,
        doctors.dept_code as local_unit_code,
        doctors.title,
        doctors.sex,
        null::date as hired_on,
        null::date as left_on,
        doctors.updated_at,
        doctors.data_source
    from doctors
    cross join source_system
)

select * from final
