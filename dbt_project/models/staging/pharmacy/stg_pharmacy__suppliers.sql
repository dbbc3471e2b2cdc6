with

source as (
    {{ published_rows('raw_pharmacy', 'suppliers') }}
),

latest as (
    {{ latest_version('source', 'supplier_code', 'updated_at') }}
),

renamed as (
    select
        {{ normalize_code('supplier_code') }} as supplier_code,
        trim(supplier_name) as supplier_name,
        lead_time_days as nominal_lead_time_days,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
