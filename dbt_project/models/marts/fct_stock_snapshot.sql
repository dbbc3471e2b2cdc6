{{ config(post_hook="{{ record_transform() }}") }}

-- One row per drug, batch and day held (end-of-day count), with days to expiry.
with

snapshots as (
    select * from {{ ref('stg_pharmacy__stock_batches') }}
),

drugs as (
    select * from {{ ref('stg_pharmacy__drugs') }}
),

final as (
    select
        snapshots.snapshot_id,
        coalesce(drugs.drug_code, '-1') as medication_key,
        to_char(snapshots.snapshot_date, 'YYYYMMDD')::int as date_key,
        snapshots.snapshot_date,
        snapshots.batch_no,
        snapshots.expiry_date,
        snapshots.quantity_on_hand,
        snapshots.valuation_unit_price,
        (snapshots.quantity_on_hand * snapshots.valuation_unit_price)::numeric(14, 2) as stock_value,
        snapshots.expiry_date - snapshots.snapshot_date as days_to_expiry,
        snapshots.expiry_date - snapshots.snapshot_date <= 30 as is_expiring_30d,
        drugs.drug_code is null as has_unknown_drug,
        snapshots.data_source
    from snapshots
    left join drugs on snapshots.drug_code = drugs.drug_code
)

select * from final
