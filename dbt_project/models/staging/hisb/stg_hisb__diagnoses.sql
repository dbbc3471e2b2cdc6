-- Codes of the ICD-10 national clinical edition 2.0 ('J18.900', 'I10.x00', extension codes
-- 'J18.900x001'), normalised like every ICD code here (upper case, half-width, the dot after the
-- category): 'J18.900X001'. Which WHO code each one extends is the mapping layer's business.
with

source as (
    {{ published_rows('raw_hisb', 'zdxx') }}
),

versioned as (
    select
        *,
        czsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'zdxh', 'czsj') }}
),

renamed as (
    select
        zdxh as diagnosis_id,
        case trim(jzlx) when '门诊' then 'OP' when '住院' then 'IP' end as encounter_type,
        trim(jzh) as encounter_id,
        {{ normalize_icd10('zddm') }} as icd10_cn_code,
        trim(zddm) <> {{ normalize_icd10('zddm') }} as was_code_reformatted,
        trim(zdmc) as diagnosis_name,
        trim(zdlb) = '主要诊断' as is_primary,
        czsj as diagnosed_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
