with

source as (
    {{ published_rows('raw_his', 'diagnoses') }}
),

latest as (
    {{ latest_version('source', 'diagnosis_id', 'updated_at') }}
),

coded as (
    select
        *,
        {{ normalize_icd10('icd10_code') }} as icd10_code_normalised
    from latest
    -- a fence: without it the planner copies the normalisation into every reference below
    offset 0
),

renamed as (
    select
        diagnosis_id,
        upper(trim(encounter_type)) as encounter_type,
        encounter_id,
        icd10_code_normalised as icd10_code,
        -- how the code was mapped (Tuva-style): as typed, reformatted, or absent
        case
            when icd10_code_normalised is null then 'missing'
            when icd10_code_normalised = icd10_code then 'as_recorded'
            else 'reformatted'
        end as icd10_mapping_method,
        icd10_code as icd10_code_recorded,
        trim(diagnosis_name) as diagnosis_name,
        is_primary,
        diagnosed_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from coded
)

select * from renamed
