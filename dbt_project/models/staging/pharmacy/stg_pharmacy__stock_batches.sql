with

source as (
    {{ published_rows('raw_pharmacy', 'stock_batches') }}
),

latest as (
    {{ latest_version('source', 'snapshot_id', 'updated_at') }}
),

renamed as (
    select
        snapshot_id,
        snapshot_date,
        {{ normalize_code('drug_code') }} as drug_code,
        trim(batch_no) as batch_no,
        expiry_date,
        quantity_on_hand,
        unit_price as valuation_unit_price,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
