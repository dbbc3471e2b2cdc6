{{ config(post_hook="{{ record_transform() }}") }}

-- One row per calendar day, whole years from the first to the last encounter or diagnosis of
-- any institution (the standard's; a re-sent copy has its original's dates).
with

encounters as (
    select * from {{ ref('std_encounter') }}
),

diagnoses as (
    select * from {{ ref('std_diagnosis') }}
),

activity_dates as (
    select started_at::date as activity_date from encounters
    union all
    select ended_at::date from encounters
    where not is_discharge_before_admission
    union all
    select diagnosed_at::date from diagnoses
),

bounds as (
    select
        date_trunc('year', min(activity_date))::date as first_day,
        (date_trunc('year', max(activity_date)) + interval '1 year - 1 day')::date as last_day
    from activity_dates
),

days as (
    select day_series::date as date_day
    from bounds
    cross join lateral generate_series(first_day, last_day, interval '1 day') as day_series
),

final as (
    select
        to_char(date_day, 'YYYYMMDD')::int as date_key,
        date_day,
        extract(year from date_day)::int as year,
        extract(quarter from date_day)::int as quarter,
        extract(month from date_day)::int as month,
        to_char(date_day, 'YYYY-MM') as year_month,
        trim(to_char(date_day, 'Month')) as month_name,
        extract(day from date_day)::int as day_of_month,
        -- ISO: 1 = Monday ... 7 = Sunday
        extract(isodow from date_day)::int as day_of_week,
        trim(to_char(date_day, 'Day')) as day_name,
        extract(week from date_day)::int as iso_week,
        extract(doy from date_day)::int as day_of_year,
        extract(isodow from date_day) in (6, 7) as is_weekend
    from days
)

select * from final
