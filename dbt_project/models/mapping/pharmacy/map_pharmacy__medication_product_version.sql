-- Every published version of each catalogue entry (the input of the drug's type-2 history,
-- int_history__drugs): one record per drug code and updated_at.
with

versions as (
    select * from {{ ref('stg_pharmacy__drug_versions') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

identified as (
    -- a version is the code and the time the source changed it
    select
        *,
        drug_code || '|' || to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as version_id
    from versions
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        versions.version_id as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || versions.version_id
            as medication_product_version_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || versions.drug_code
            as medication_product_key,
        versions.drug_code as local_drug_code,
        versions.list_unit_price,
        versions.supplier_code,
        versions.antibiotic_grade,
        versions.is_essential,
        versions.is_active,
        versions.updated_at
    from identified as versions
    cross join source_system
)

select * from final
