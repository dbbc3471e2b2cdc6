-- The HIS's diagnoses as standard diagnoses (std_diagnosis): one row per diagnosis_id. The HIS
-- codes in ICD-10 (national clinical edition, map_his__source_system): the normalised code is
-- the standard one, the code as typed is kept beside it with how it was mapped. The encounter
-- is the one the diagnosis was recorded on; std_encounter names the one it survives as.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

diagnoses as (
    select * from {{ ref('stg_his__diagnoses') }}
),

final as (
    select
        {{ standard_key('diagnoses.diagnosis_id::text') }} as diagnosis_key,
        source_system.institution_id,
        source_system.source_system,
        diagnoses.diagnosis_id::text as source_record_id,
        {{ standard_key("diagnoses.encounter_type || '|' || diagnoses.encounter_id::text") }}
            as encounter_key,
        diagnoses.encounter_type as local_encounter_type,
        diagnoses.icd10_code,
        diagnoses.icd10_code_recorded as local_diagnosis_code,
        diagnoses.diagnosis_name as local_diagnosis_name,
        source_system.diagnosis_code_system as local_diagnosis_code_system,
        -- as typed (as_recorded), reformatted to the ICD-10 form, or absent (missing)
        diagnoses.icd10_mapping_method as diagnosis_mapping_method,
        diagnoses.is_primary,
        diagnoses.diagnosed_at,
        diagnoses.updated_at,
        diagnoses.data_source
    from diagnoses
    cross join source_system
)

select * from final
