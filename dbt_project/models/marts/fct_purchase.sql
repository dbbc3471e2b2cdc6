{{ config(post_hook="{{ record_transform() }}") }}

-- One row per purchase order with its receipts: what was ordered, what arrived, and the
-- actual lead time (first delivery day minus order day) that mart_reorder_point plans with.
with

orders as (
    select * from {{ ref('stg_pharmacy__purchase_orders') }}
),

receipts as (
    select * from {{ ref('stg_pharmacy__receipts') }}
),

drugs as (
    select * from {{ ref('stg_pharmacy__drugs') }}
),

received as (
    select
        po_id,
        count(*) as receipt_count,
        sum(quantity_received) as quantity_received,
        min(received_at) as first_received_at,
        max(received_at) as last_received_at,
        min(expiry_date) as earliest_expiry_date
    from receipts
    group by po_id
),

final as (
    select
        orders.po_id,
        coalesce(drugs.drug_code, '-1') as medication_key,
        to_char(orders.ordered_at, 'YYYYMMDD')::int as date_key,
        orders.supplier_code,
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
        drugs.drug_code is null as has_unknown_drug,
        orders.data_source
    from orders
    left join received on orders.po_id = received.po_id
    left join drugs on orders.drug_code = drugs.drug_code
)

select * from final
