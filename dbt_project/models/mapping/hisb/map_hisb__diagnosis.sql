-- Hospital B's diagnoses (zdxx) as standard diagnoses. Its codes are the ICD-10 national
-- clinical edition 2.0 (seeds/mapping/hisb/hisb_code_systems.csv): six characters after the
-- category and extension codes ('J18.900x001', 'I10.x00'). The standard code is the WHO one
-- each extends: the category, plus the first character after the dot when it is a digit
-- ('J18.900X001' -> 'J18.9', 'I10.X00' -> 'I10'); the clinical code is kept as the local one
-- (diagnosis_mapping_method 'via_table': derived by the edition's rule, not as typed).
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

diagnoses as (
    select * from {{ ref('stg_hisb__diagnoses') }}
),

mapped as (
    select
        *,
        case
            when icd10_cn_code ~ '^[A-Z][0-9]{2}\.[0-9]' then left(icd10_cn_code, 5)
            when icd10_cn_code ~ '^[A-Z][0-9]{2}(\.|$)' then left(icd10_cn_code, 3)
        end as who_code
    from diagnoses
),

final as (
    select
        {{ standard_key('mapped.diagnosis_id::text') }} as diagnosis_key,
        source_system.institution_id,
        source_system.source_system,
        mapped.diagnosis_id::text as source_record_id,
        {{ standard_key("mapped.encounter_type || '|' || mapped.encounter_id") }} as encounter_key,
        mapped.encounter_type as local_encounter_type,
        mapped.who_code as icd10_code,
        mapped.icd10_cn_code as local_diagnosis_code,
        mapped.diagnosis_name as local_diagnosis_name,
        source_system.diagnosis_code_system as local_diagnosis_code_system,
        case when mapped.who_code is null then 'missing' else 'via_table' end as diagnosis_mapping_method,
        mapped.is_primary,
        mapped.diagnosed_at,
        mapped.updated_at,
        mapped.data_source
    from mapped
    cross join source_system
)

select * from final
