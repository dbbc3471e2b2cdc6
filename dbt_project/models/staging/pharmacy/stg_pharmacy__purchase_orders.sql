with

source as (
    {{ published_rows('raw_pharmacy', 'purchase_orders') }}
),

latest as (
    {{ latest_version('source', 'po_id', 'updated_at') }}
),

renamed as (
    select
        po_id,
        {{ normalize_code('supplier_code') }} as supplier_code,
        {{ normalize_code('drug_code') }} as drug_code,
        quantity as quantity_ordered,
        unit_price,
        ordered_at,
        expected_at,
        lower(trim(status)) as status,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
