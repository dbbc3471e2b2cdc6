-- Every published version of each HIS doctor (std_practitioner_version): what the type-2 history tracks.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

versions as (
    select * from {{ ref('stg_his__doctor_versions') }}
),

final as (
    select
        {{ standard_key("versions.doctor_id::text || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US')") }} as practitioner_version_key,
        source_system.institution_id,
        source_system.source_system,
        versions.doctor_id::text || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US') as source_record_id,
        {{ standard_key('versions.doctor_id::text') }} as practitioner_key,
        versions.dept_code as local_unit_code,
        {{ standard_key('versions.dept_code') }} as organisation_unit_key,
        versions.title,
        versions.updated_at
    from versions
    cross join source_system
)

select * from final
