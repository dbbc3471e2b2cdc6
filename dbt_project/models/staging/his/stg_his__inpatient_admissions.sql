with

source as (
    {{ published_rows('raw_his', 'inpatient_admissions') }}
),

latest as (
    {{ latest_version('source', 'admission_id', 'updated_at') }}
),

renamed as (
    select
        admission_id,
        patient_id,
        {{ normalize_code('dept_code') }} as dept_code,
        attending_doctor_id as doctor_id,
        trim(ward) as ward,
        admitted_at,
        -- kept as recorded; the flag tells consumers not to trust it
        discharged_at,
        coalesce(discharged_at < admitted_at, false) as is_discharge_before_admission,
        nullif(lower(trim(discharge_status)), '') as discharge_status,
        case when total_cost >= 0 then total_cost end as total_cost,
        coalesce(total_cost < 0, false) as is_total_cost_negative,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
