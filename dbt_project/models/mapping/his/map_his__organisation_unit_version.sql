-- Every published version of each HIS department (std_organisation_unit_version): what the type-2 history tracks.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

versions as (
    select * from {{ ref('stg_his__department_versions') }}
),

final as (
    select
        {{ standard_key("versions.dept_code || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US')") }} as organisation_unit_version_key,
        source_system.institution_id,
        source_system.source_system,
        versions.dept_code || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US') as source_record_id,
        {{ standard_key('versions.dept_code') }} as organisation_unit_key,
        versions.dept_code as local_unit_code,
        versions.dept_name as unit_name,
        versions.parent_dept_code as local_parent_unit_code,
        versions.dept_type as unit_type,
        versions.is_active,
        versions.updated_at
    from versions
    cross join source_system
)

select * from final
