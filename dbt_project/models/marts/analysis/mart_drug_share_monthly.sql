{{ config(post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"]) }}

-- Drug cost share (药占比) and essential-drug share (基本药物占比) per month, institution and
-- department, plus each hospital's total row (department_key 'ALL') and the group's
-- (institution_id 'ALL', department_key 'ALL': the sum of the institutions). Revenue = net drug spend (dispensing,
-- by the charged department) + outpatient visit fees + inpatient admission costs (by the month
-- the encounter started; cancelled visits left out).
with

dispensing as (
    select * from {{ ref('fct_dispensing') }}
),

medications as (
    select * from {{ ref('dim_medication') }}
),

encounters as (
    select * from {{ ref('fct_encounter') }}
),

drug_spend as (
    select
        date_trunc('month', dispensing.dispensed_at)::date as month,
        dispensing.institution_id,
        dispensing.department_key,
        sum(dispensing.amount) as drug_spend,
        coalesce(sum(dispensing.amount) filter (where medications.is_essential), 0) as essential_drug_spend
    from dispensing
    left join medications on dispensing.medication_key = medications.medication_key
    group by date_trunc('month', dispensing.dispensed_at)::date, dispensing.institution_id, dispensing.department_key
),

encounter_revenue as (
    select
        date_trunc('month', started_at)::date as month,
        institution_id,
        department_key,
        sum(amount) as encounter_revenue
    from encounters
    where coalesce(status, '') <> 'cancelled'
    group by date_trunc('month', started_at)::date, institution_id, department_key
),

by_department as (
    select
        coalesce(drug_spend.month, encounter_revenue.month) as month,
        coalesce(drug_spend.institution_id, encounter_revenue.institution_id) as institution_id,
        coalesce(drug_spend.department_key, encounter_revenue.department_key) as department_key,
        coalesce(drug_spend.drug_spend, 0) as drug_spend,
        coalesce(drug_spend.essential_drug_spend, 0) as essential_drug_spend,
        coalesce(encounter_revenue.encounter_revenue, 0) as encounter_revenue
    from drug_spend
    full outer join encounter_revenue
        on
            drug_spend.month = encounter_revenue.month
            and drug_spend.institution_id = encounter_revenue.institution_id
            and drug_spend.department_key = encounter_revenue.department_key
),

hospital as (
    select
        month,
        institution_id,
        'ALL' as department_key,
        sum(drug_spend) as drug_spend,
        sum(essential_drug_spend) as essential_drug_spend,
        sum(encounter_revenue) as encounter_revenue
    from by_department
    group by month, institution_id
),

group_total as (
    select
        month,
        'ALL' as institution_id,
        'ALL' as department_key,
        sum(drug_spend) as drug_spend,
        sum(essential_drug_spend) as essential_drug_spend,
        sum(encounter_revenue) as encounter_revenue
    from hospital
    group by month
),

unioned as (
    select * from by_department
    union all
    select * from hospital
    union all
    select * from group_total
),

final as (
    select
        month,
        institution_id,
        department_key,
        drug_spend::numeric(14, 2) as drug_spend,
        essential_drug_spend::numeric(14, 2) as essential_drug_spend,
        round(essential_drug_spend / nullif(drug_spend, 0), 4)::numeric(6, 4) as essential_drug_share,
        (drug_spend + encounter_revenue)::numeric(14, 2) as total_revenue,
        round(drug_spend / nullif(drug_spend + encounter_revenue, 0), 4)::numeric(6, 4) as drug_cost_share
    from unioned
)

select * from final
