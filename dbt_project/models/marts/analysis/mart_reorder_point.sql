{{ config(post_hook="{{ record_transform() }}") }}

-- When and how much to order, per product of each institution's catalogue (stock is held per
-- institution: a reorder point does not add up across hospitals, so there is no group row):
--   daily demand: net dispensed quantity per day over the last reorder_demand_history_days
--     (days without dispensing count as 0); mean and sample standard deviation;
--   lead_time_days: median actual lead time of the drug's orders (fct_purchase), else its
--     supplier's nominal lead time;
--   safety_stock = z x sd x sqrt(lead time); reorder_point = mean x lead time + safety stock;
--   suggested_order_qty = max(0, reorder_point + mean x review period - on hand - on order),
--     rounded up to whole packs (盒).
with

dispensing as (
    select * from {{ ref('fct_dispensing') }}
    where medication_key <> '-1'
),

medications as (
    select * from {{ ref('dim_medication') }}
    where not is_unknown_member
),

purchases as (
    select * from {{ ref('fct_purchase') }}
),

snapshots as (
    select * from {{ ref('fct_stock_snapshot') }}
),

suppliers as (
    select * from {{ ref('std_supplier') }}
),

daily as (
    select
        dispensed_at::date as demand_date,
        medication_key,
        sum(quantity) as quantity
    from dispensing
    group by dispensed_at::date, medication_key
),

bounds as (
    select
        max(demand_date) as last_day,
        greatest(min(demand_date), max(demand_date) - ({{ var('reorder_demand_history_days') }} - 1))
            as first_day
    from daily
),

days as (
    select day_series::date as demand_date
    from bounds
    cross join lateral generate_series(first_day, last_day, interval '1 day') as day_series
),

demand as (
    select
        medications.medication_key,
        avg(coalesce(daily.quantity, 0)) as avg_daily_demand,
        coalesce(stddev_samp(coalesce(daily.quantity, 0)), 0) as sd_daily_demand
    from medications
    cross join days
    left join daily
        on
            medications.medication_key = daily.medication_key
            and days.demand_date = daily.demand_date
    group by medications.medication_key
),

lead_times as (
    select
        medication_key,
        percentile_cont(0.5) within group (order by lead_time_days) as median_lead_time_days
    from purchases
    where lead_time_days is not null
    group by medication_key
),

on_order as (
    select
        medication_key,
        sum(quantity_outstanding) as on_order
    from purchases
    where is_open
    group by medication_key
),

latest_snapshot as (
    select max(snapshot_date) as snapshot_date from snapshots
),

on_hand as (
    select
        snapshots.medication_key,
        sum(snapshots.quantity_on_hand) as on_hand,
        sum(snapshots.quantity_on_hand) filter (
            where snapshots.expiry_date <= snapshots.snapshot_date + 30
        ) as expiring_30d_qty
    from snapshots
    inner join latest_snapshot on snapshots.snapshot_date = latest_snapshot.snapshot_date
    group by snapshots.medication_key
),

planned as (
    select
        medications.medication_key,
        medications.institution_id,
        medications.pack_size,
        coalesce(demand.avg_daily_demand, 0) as avg_daily_demand,
        coalesce(demand.sd_daily_demand, 0) as sd_daily_demand,
        coalesce(lead_times.median_lead_time_days::numeric, suppliers.nominal_lead_time_days) as lead_time_days,
        lead_times.medication_key is null as is_lead_time_nominal,
        coalesce(on_hand.on_hand, 0) as on_hand,
        coalesce(on_order.on_order, 0) as on_order,
        coalesce(on_hand.expiring_30d_qty, 0) as expiring_30d_qty
    from medications
    left join demand on medications.medication_key = demand.medication_key
    left join lead_times on medications.medication_key = lead_times.medication_key
    left join suppliers
        on
            medications.institution_id = suppliers.institution_id
            and medications.source_system = suppliers.source_system
            and medications.supplier_code = suppliers.local_supplier_code
    left join on_hand on medications.medication_key = on_hand.medication_key
    left join on_order on medications.medication_key = on_order.medication_key
),

computed as (
    select
        *,
        {{ var('reorder_service_z') }} * sd_daily_demand * sqrt(lead_time_days) as safety_stock
    from planned
),

with_point as (
    select
        *,
        avg_daily_demand * lead_time_days + safety_stock as reorder_point
    from computed
),

final as (
    select
        medication_key,
        institution_id,
        round(avg_daily_demand, 4)::numeric as avg_daily_demand,
        round(sd_daily_demand, 4)::numeric as sd_daily_demand,
        lead_time_days::numeric as lead_time_days,
        is_lead_time_nominal,
        round(safety_stock, 2) as safety_stock,
        round(reorder_point, 2) as reorder_point,
        on_hand::numeric(14, 2) as on_hand,
        on_order::numeric(14, 2) as on_order,
        (
            ceil(
                greatest(
                    0,
                    reorder_point + avg_daily_demand * {{ var('reorder_review_period_days') }}
                    - on_hand - on_order
                ) / greatest(pack_size, 1)
            ) * greatest(pack_size, 1)
        )::numeric(14, 2) as suggested_order_qty,
        expiring_30d_qty::numeric(14, 2) as expiring_30d_qty,
        pack_size,
        reorder_point > 0 and on_hand + on_order <= reorder_point as needs_reorder
    from with_point
)

select * from final
