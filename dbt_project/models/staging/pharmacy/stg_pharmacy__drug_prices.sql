with

source as (
    {{ published_rows('raw_pharmacy', 'drug_prices') }}
),

latest as (
    {{ latest_version('source', 'price_id', 'updated_at') }}
),

renamed as (
    select
        price_id,
        {{ normalize_code('drug_code') }} as drug_code,
        valid_from,
        -- exclusive; null while the price is current
        valid_to,
        unit_price,
        trim(reason) as price_change_reason,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
