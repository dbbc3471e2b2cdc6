with

source as (
    {{ published_rows('raw_pharmacy', 'receipts') }}
),

latest as (
    {{ latest_version('source', 'receipt_id', 'updated_at') }}
),

renamed as (
    select
        receipt_id,
        po_id,
        {{ normalize_code('drug_code') }} as drug_code,
        received_at,
        quantity as quantity_received,
        trim(batch_no) as batch_no,
        expiry_date,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
