{{ config(post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"]) }}

-- Drug consumption per month, institution, product and charged department, net of returns
-- (退药): what procurement forecasts and managers compare. Grain: month x institution_id x
-- medication_key x department_key. Group totals: institution_id 'ALL', department_key 'ALL',
-- one row per month and standard code, medication_key 'ALL:<ATC code>' ('ALL:unmapped' for
-- products without one): a product is one institution's, the ATC code is the group's. Readers
-- of single products skip them (department_key 'ALL', as the forecast and the report do).
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
        institution_id,
        medication_key,
        department_key,
        sum(quantity) as quantity,
        sum(ddd) as ddd,
        sum(amount) as spend,
        count(*) filter (where not is_return) as lines,  -- noqa: RF04
        count(*) filter (where is_return) as return_lines
    from dispensing
    group by date_trunc('month', dispensed_at)::date, institution_id, medication_key, department_key
),

by_institution as (
    select
        monthly.month,
        monthly.institution_id,
        monthly.medication_key,
        medications.atc_code,
        medications.atc_level1_code as atc_level1,
        medications.atc_level2_code as atc_level2,
        monthly.department_key,
        monthly.quantity,
        monthly.ddd,
        monthly.spend,
        monthly.lines,
        monthly.return_lines
    from monthly
    left join medications on monthly.medication_key = medications.medication_key
),

group_total as (
    select
        month,
        'ALL' as institution_id,
        'ALL:' || coalesce(atc_code, 'unmapped') as medication_key,
        atc_code,
        min(atc_level1) as atc_level1,
        min(atc_level2) as atc_level2,
        'ALL' as department_key,
        sum(quantity) as quantity,
        sum(ddd) as ddd,
        sum(spend) as spend,
        sum(lines) as lines,  -- noqa: RF04
        sum(return_lines) as return_lines
    from by_institution
    group by month, atc_code
),

unioned as (
    select * from by_institution
    union all
    select * from group_total
),

final as (
    select
        month,
        institution_id,
        medication_key,
        atc_code,
        atc_level1,
        atc_level2,
        department_key,
        quantity::numeric(14, 2) as quantity,
        ddd::numeric as ddd,
        spend::numeric(14, 2) as spend,
        lines::int as lines,  -- noqa: RF04
        return_lines::int as return_lines
    from unioned
)

select * from final
