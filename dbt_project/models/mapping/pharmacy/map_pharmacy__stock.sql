-- End-of-day stock per drug and batch (库存快照), as std_stock.
with

snapshots as (
    select * from {{ ref('stg_pharmacy__stock_batches') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        snapshots.snapshot_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || snapshots.snapshot_id::text
            as stock_key,
        snapshots.snapshot_date,
        source_system.institution_id || ':' || source_system.source_system || ':' || snapshots.drug_code
            as medication_product_key,
        snapshots.drug_code as local_drug_code,
        snapshots.batch_no,
        snapshots.expiry_date,
        snapshots.quantity_on_hand,
        snapshots.valuation_unit_price,
        snapshots.data_source
    from snapshots
    cross join source_system
)

select * from final
