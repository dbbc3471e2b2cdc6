with

source as (
    {{ accepted_batches(source('raw_his', 'diagnoses')) }}
),

latest as (
    {{ latest_version('source', 'diagnosis_id') }}
),

renamed as (
    select
        diagnosis_id,
        upper(trim(encounter_type)) as encounter_type,
        encounter_id,
        {{ normalize_icd10('icd10_code') }} as icd10_code,
        -- how the code was mapped (Tuva-style): as typed, reformatted, or absent
        case
            when {{ normalize_icd10('icd10_code') }} is null then 'missing'
            when {{ normalize_icd10('icd10_code') }} = icd10_code then 'as_recorded'
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
    from latest
)

select * from renamed
