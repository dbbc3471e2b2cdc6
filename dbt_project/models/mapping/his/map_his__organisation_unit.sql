-- The HIS's departments (科室) and divisions as standard organisation units
-- (std_organisation_unit): one row per dept_code. The HIS keeps wards as text on the admission
-- (std_encounter.ward_code), not as units of their own.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

departments as (
    select * from {{ ref('stg_his__departments') }}
),

final as (
    select
        {{ standard_key('departments.dept_code') }} as organisation_unit_key,
        source_system.institution_id,
        source_system.source_system,
        departments.dept_code as source_record_id,
        departments.dept_code as local_unit_code,
        departments.dept_name as unit_name,
        -- the HIS's types are the standard's (division, clinical, emergency, medical_technology...)
        departments.dept_type as unit_type,
        {{ standard_key('departments.parent_dept_code') }} as parent_organisation_unit_key,
        departments.parent_dept_code as local_parent_unit_code,
        departments.is_active,
        departments.created_at,
        departments.updated_at,
        departments.data_source
    from departments
    cross join source_system
)

select * from final
