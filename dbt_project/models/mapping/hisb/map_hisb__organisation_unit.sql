-- Hospital B's departments (ksdm, its own codes) as standard organisation units: the unit type
-- comes from the department mapping seed (seeds/mapping/hisb/hisb_department_map.csv), a code
-- the seed does not list keeps its source category and says so (unit_type null). Hospital B
-- has no divisions: no parent.
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

departments as (
    select * from {{ ref('stg_hisb__departments') }}
),

department_map as (
    select * from {{ ref('hisb_department_map') }}
),

final as (
    select
        {{ standard_key('departments.dept_code') }} as organisation_unit_key,
        source_system.institution_id,
        source_system.source_system,
        departments.dept_code as source_record_id,
        departments.dept_code as local_unit_code,
        departments.dept_name as unit_name,
        department_map.department_type as unit_type,
        null::text as parent_organisation_unit_key,
        null::text as local_parent_unit_code,
        departments.is_active,
        null::timestamp as created_at,
        departments.updated_at,
        departments.data_source
    from departments
    left join department_map on departments.dept_code = department_map.dept_code
    cross join source_system
)

select * from final
