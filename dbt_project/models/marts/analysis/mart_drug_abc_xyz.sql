{{ config(post_hook="{{ record_transform() }}") }}

-- ABC by value and XYZ by demand variability, one row per drug consumed in the window: the
-- last 12 months of mart_drug_consumption_monthly (the whole history when shorter). Classified
-- within each institution (its own products and spend) and, for the group (institution_id
-- 'ALL'), by standard code across institutions (the consumption mart's 'ALL:<ATC>' rows).
-- ABC: drugs ranked by spend; A while the cumulative share is <= abc_a_max_cumulative_share,
-- B <= abc_b_max_cumulative_share, else C. XYZ: coefficient of variation (population standard
-- deviation / mean) of monthly quantity, months without consumption counted as 0;
-- X <= xyz_x_max_cv, Y <= xyz_y_max_cv, else Z (also when the mean is not positive).
with

consumption as (
    select
        *,
        coalesce(institution_id, '') as institution_partition
    from {{ ref('mart_drug_consumption_monthly') }}
    where medication_key <> '-1'
),

monthly as (
    select
        month,
        institution_partition,
        min(institution_id) as institution_id,
        medication_key,
        sum(quantity) as quantity,
        sum(spend) as spend
    from consumption
    group by month, institution_partition, medication_key
),

bounds as (
    select
        max(month) as last_month,
        greatest(min(month), (max(month) - interval '11 months')::date) as first_month
    from monthly
),

months as (
    select month_series::date as month
    from bounds
    cross join lateral generate_series(first_month, last_month, interval '1 month') as month_series
),

items as (
    select distinct
        monthly.institution_partition,
        monthly.institution_id,
        monthly.medication_key
    from monthly
    inner join bounds on monthly.month >= bounds.first_month
),

grid as (
    select
        items.institution_partition,
        items.institution_id,
        items.medication_key,
        months.month,
        coalesce(monthly.quantity, 0) as quantity,
        coalesce(monthly.spend, 0) as spend
    from items
    cross join months
    left join monthly
        on
            items.medication_key = monthly.medication_key
            and months.month = monthly.month
),

per_item as (
    select
        institution_partition,
        institution_id,
        medication_key,
        sum(spend) as annual_value,
        count(*) as months_in_window,
        avg(quantity) as mean_monthly_quantity,
        stddev_pop(quantity) as sd_monthly_quantity
    from grid
    group by institution_partition, institution_id, medication_key
),

shared as (
    select
        *,
        annual_value / nullif(sum(annual_value) over institution, 0) as value_share,
        sum(annual_value) over (
            institution
            order by annual_value desc, medication_key asc
            rows between unbounded preceding and current row
        ) / nullif(sum(annual_value) over institution, 0) as cumulative_share,
        case
            when mean_monthly_quantity > 0 then sd_monthly_quantity / mean_monthly_quantity
        end as cv
    from per_item
    window institution as (partition by institution_partition)
),

final as (
    select
        medication_key,
        institution_id,
        annual_value::numeric(14, 2) as annual_value,
        round(value_share, 6)::numeric as value_share,
        round(cumulative_share, 6)::numeric as cumulative_share,
        case
            when cumulative_share <= {{ var('abc_a_max_cumulative_share') }} then 'A'
            when cumulative_share <= {{ var('abc_b_max_cumulative_share') }} then 'B'
            else 'C'
        end as abc_class,
        round(mean_monthly_quantity, 4)::numeric as mean_monthly_quantity,
        round(cv, 4)::numeric as cv,
        case
            when cv <= {{ var('xyz_x_max_cv') }} then 'X'
            when cv <= {{ var('xyz_y_max_cv') }} then 'Y'
            else 'Z'
        end as xyz_class,
        months_in_window::int as months_in_window
    from shared
)

select * from final
