-- Purchase orders (采购订单) as std_purchase.
with

orders as (
    select * from {{ ref('stg_pharmacy__purchase_orders') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        orders.po_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || orders.po_id::text
            as purchase_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || orders.supplier_code
            as supplier_key,
        orders.supplier_code as local_supplier_code,
        source_system.institution_id || ':' || source_system.source_system || ':' || orders.drug_code
            as medication_product_key,
        orders.drug_code as local_drug_code,
        orders.quantity_ordered,
        orders.unit_price,
        orders.ordered_at,
        orders.expected_at,
        orders.status,
        orders.data_source
    from orders
    cross join source_system
)

select * from final
