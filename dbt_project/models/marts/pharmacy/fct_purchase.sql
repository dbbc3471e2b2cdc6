{{ config(post_hook="{{ record_transform() }}") }}

-- One row per purchase order of every institution and source (std_purchase) with its receipts
-- (std_receipt): what was ordered, what arrived, and the actual lead time (first delivery day
-- minus order day) that mart_reorder_point plans with.
with

orders as (
    select * from {{ ref('std_purchase') }}
),

receipts as (
    select * from {{ ref('std_receipt') }}
),

products as (
    select * from {{ ref('std_medication_product') }}
),

received as (
    select
        purchase_key,
        count(*) as receipt_count,
        sum(quantity_received) as quantity_received,
        min(received_at) as first_received_at,
        max(received_at) as last_received_at,
        min(expiry_date) as earliest_expiry_date
    from receipts
    group by purchase_key
),

final as (
    select
        orders.purchase_key,
        orders.institution_id,
        orders.source_system,
        orders.source_record_id as po_id,
        coalesce(products.medication_product_key, '-1') as medication_key,
        to_char(orders.ordered_at, 'YYYYMMDD')::int as date_key,
        orders.local_supplier_code as supplier_code,
        orders.ordered_at,
        orders.expected_at,
        orders.status,
        orders.quantity_ordered,
        orders.unit_price,
        (orders.quantity_ordered * orders.unit_price)::numeric(14, 2) as order_amount,
        coalesce(received.receipt_count, 0)::int as receipt_count,
        coalesce(received.quantity_received, 0) as quantity_received,
        greatest(orders.quantity_ordered - coalesce(received.quantity_received, 0), 0) as quantity_outstanding,
        received.first_received_at,
        received.last_received_at,
        received.earliest_expiry_date,
        (received.first_received_at::date - orders.ordered_at::date) as lead_time_days,
        (orders.expected_at - orders.ordered_at::date) as nominal_lead_time_days,
        coalesce(received.first_received_at::date > orders.expected_at, false) as is_late,
        orders.status in ('open', 'partial') as is_open,
        products.medication_product_key is null as has_unknown_drug,
        orders.data_source
    from orders
    left join received on orders.purchase_key = received.purchase_key
    left join products on orders.medication_product_key = products.medication_product_key
)

select * from final
