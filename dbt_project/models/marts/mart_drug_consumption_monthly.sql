{{ config(post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"]) }}

-- Drug consumption per month, drug and charged department, net of returns (退药): what
-- procurement forecasts and managers compare. Grain: month x medication_key x department_key.
with

dispensing as (
    select * from {{ ref('fct_dispensing') }}
),

medications as (
    select * from {{ ref('dim_medication') }}
),

monthly as (
    select
        date_trunc('month', dispensed_at)::date as month,
        medication_key,
        department_key,
        sum(quantity) as quantity,
        sum(ddd) as ddd,
        sum(amount) as spend,
        count(*) filter (where not is_return) as lines,  -- noqa: RF04
        count(*) filter (where is_return) as return_lines
    from dispensing
    group by date_trunc('month', dispensed_at)::date, medication_key, department_key
),

final as (
    select
        monthly.month,
        monthly.medication_key,
        medications.atc_code,
        medications.atc_level1_code as atc_level1,
        medications.atc_level2_code as atc_level2,
        monthly.department_key,
        monthly.quantity::numeric(14, 2) as quantity,
        monthly.ddd::numeric as ddd,
        monthly.spend::numeric(14, 2) as spend,
        monthly.lines::int as lines,  -- noqa: RF04
        monthly.return_lines::int as return_lines
    from monthly
    left join medications on monthly.medication_key = medications.medication_key
)

select * from final
