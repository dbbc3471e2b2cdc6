-- Every published version of each HIS registration (std_person_version), reduced to the district
-- of residence (区/县): the street address never leaves staging.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

versions as (
    select * from {{ ref('stg_his__patient_versions') }}
),

final as (
    select
        {{ standard_key("versions.patient_id::text || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US')") }} as person_version_key,
        source_system.institution_id,
        source_system.source_system,
        versions.patient_id::text || '|' || to_char(versions.updated_at, 'YYYY-MM-DD HH24:MI:SS.US') as source_record_id,
        {{ standard_key('versions.patient_id::text') }} as person_key,
        versions.residence_district,
        versions.updated_at
    from versions
    cross join source_system
)

select * from final
