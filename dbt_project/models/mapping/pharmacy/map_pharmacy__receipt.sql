-- Goods receipts (入库) against purchase orders, as std_receipt.
with

receipts as (
    select * from {{ ref('stg_pharmacy__receipts') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        receipts.receipt_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || receipts.receipt_id::text
            as receipt_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || receipts.po_id::text
            as purchase_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || receipts.drug_code
            as medication_product_key,
        receipts.drug_code as local_drug_code,
        receipts.received_at,
        receipts.quantity_received,
        receipts.batch_no,
        receipts.expiry_date,
        receipts.data_source
    from receipts
    cross join source_system
)

select * from final
