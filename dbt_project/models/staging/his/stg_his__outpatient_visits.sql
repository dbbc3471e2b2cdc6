with

source as (
    {{ published_rows('raw_his', 'outpatient_visits') }}
),

latest as (
    {{ latest_version('source', 'visit_id', 'updated_at') }}
),

renamed as (
    select
        visit_id,
        patient_id,
        {{ normalize_code('dept_code') }} as dept_code,
        doctor_id,
        visit_at,
        trim(visit_type) as visit_type,
        -- a negative fee is a data-entry error, not a refund (refunds are separate records)
        case when fee >= 0 then fee end as fee,
        coalesce(fee < 0, false) as is_fee_negative,
        lower(trim(status)) as status,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
