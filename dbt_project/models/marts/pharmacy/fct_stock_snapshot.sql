{{ config(post_hook="{{ record_transform() }}") }}

-- One row per product, batch and day held (end-of-day count, std_stock of every institution
-- and source), with days to expiry.
with

snapshots as (
    select * from {{ ref('std_stock') }}
),

products as (
    select * from {{ ref('std_medication_product') }}
),

final as (
    select
        snapshots.stock_key,
        snapshots.institution_id,
        snapshots.source_system,
        snapshots.source_record_id as snapshot_id,
        coalesce(products.medication_product_key, '-1') as medication_key,
        to_char(snapshots.snapshot_date, 'YYYYMMDD')::int as date_key,
        snapshots.snapshot_date,
        snapshots.batch_no,
        snapshots.expiry_date,
        snapshots.quantity_on_hand,
        snapshots.valuation_unit_price,
        (snapshots.quantity_on_hand * snapshots.valuation_unit_price)::numeric(14, 2) as stock_value,
        snapshots.expiry_date - snapshots.snapshot_date as days_to_expiry,
        snapshots.expiry_date - snapshots.snapshot_date <= 30 as is_expiring_30d,
        products.medication_product_key is null as has_unknown_drug,
        snapshots.data_source
    from snapshots
    left join products on snapshots.medication_product_key = products.medication_product_key
)

select * from final
