-- patient_id is the HIS's: it goes no further than the intermediate layer, where it becomes
-- the HMAC patient_key (int_his__patient_key_map).
with

source as (
    {{ published_rows('raw_pharmacy', 'prescriptions') }}
),

latest as (
    {{ latest_version('source', 'prescription_id', 'updated_at') }}
),

renamed as (
    select
        prescription_id,
        upper(trim(encounter_type)) as encounter_type,
        visit_id,
        admission_id,
        patient_id,
        doctor_id,
        {{ normalize_code('dept_code') }} as dept_code,
        -- as the HIS had it: the HIS's format defects show here too
        {{ normalize_icd10('diagnosis_code') }} as diagnosis_icd10_code,
        trim(prescription_type) as prescription_type,
        prescribed_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
