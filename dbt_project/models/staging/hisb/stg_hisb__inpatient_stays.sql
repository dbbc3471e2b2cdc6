-- ryrq / cyrq are text in three formats; cyrq is null while the patient is in hospital. A
-- discharge before the admission is flagged (the length of stay would be negative).
with

source as (
    {{ published_rows('raw_hisb', 'zyjl') }}
),

versioned as (
    select
        *,
        xgsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'zyh', 'xgsj') }}
),

renamed as (
    select
        trim(zyh) as admission_id,
        brid as patient_id,
        {{ normalize_code('ksdm') }} as dept_code,
        {{ normalize_code('ysdm') }} as attending_doctor_code,
        trim(bq) as ward,
        {{ parse_cn_timestamp('ryrq') }} as admitted_at,
        {{ parse_cn_timestamp('cyrq') }} as discharged_at,
        nullif(trim(cyrq), '') is null as is_in_hospital,
        trim(cyqk) as discharge_status,
        case when zfy >= 0 then zfy end as total_cost,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
    offset 0
),

final as (
    select
        admission_id,
        patient_id,
        dept_code,
        attending_doctor_code,
        ward,
        admitted_at,
        case when admitted_at is null then 'unparseable' else 'valid' end as admitted_at_status,
        case when discharged_at >= admitted_at then discharged_at end as discharged_at,
        case
            when is_in_hospital then 'in_hospital'
            when discharged_at is null then 'unparseable'
            when discharged_at < admitted_at then 'before_admission'
            else 'valid'
        end as discharged_at_status,
        discharge_status,
        total_cost,
        updated_at,
        data_source,
        _extracted_at,
        _batch_id
    from renamed
)

select * from final
