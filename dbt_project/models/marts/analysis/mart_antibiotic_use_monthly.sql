{{ config(post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"]) }}

-- Antibacterial stewardship indicators per month, institution and department, plus each
-- hospital's total row (department_key 'ALL') and the group's (institution_id 'ALL',
-- department_key 'ALL': DDDs, patient-days and prescriptions summed over the institutions):
--   antibiotic use density (抗菌药物使用强度) = DDDs of systemic antibacterials (ATC J01)
--     dispensed to inpatients (net of returns) per 100 patient-days;
--   patient-days: nights of each inpatient stay falling in the month (a stay of less than a
--     night counts as one day); stays not yet discharged run to the day after the last
--     encounter; stays with an impossible discharge are left out;
--   outpatient antibiotic share: outpatient prescriptions with a J01 line / all of them.
with

encounters as (
    select * from {{ ref('fct_encounter') }}
),

dispensing as (
    select * from {{ ref('fct_dispensing') }}
),

lines as (
    select * from {{ ref('fct_prescription_line') }}
),

medications as (
    select * from {{ ref('dim_medication') }}
),

as_of as (
    select max(started_at)::date + 1 as as_of_date from encounters
),

stays as (
    select
        encounters.institution_id,
        encounters.department_key,
        encounters.started_at::date as admitted_on,
        greatest(
            coalesce(encounters.ended_at::date, as_of.as_of_date),
            encounters.started_at::date + 1
        ) as left_on
    from encounters
    cross join as_of
    where
        encounters.encounter_type = 'IP'
        and not encounters.is_discharge_before_admission
),

stay_months as (
    select
        stays.institution_id,
        stays.department_key,
        month_series::date as month,
        least(stays.left_on, (month_series + interval '1 month')::date)
        - greatest(stays.admitted_on, month_series::date) as patient_days
    from stays
    cross join lateral generate_series(
        date_trunc('month', stays.admitted_on),
        date_trunc('month', stays.left_on - 1),
        interval '1 month'
    ) as month_series
),

patient_days as (
    select
        month,
        institution_id,
        department_key,
        sum(patient_days) as patient_days
    from stay_months
    group by month, institution_id, department_key
),

inpatient_ddd as (
    select
        date_trunc('month', dispensing.dispensed_at)::date as month,
        dispensing.institution_id,
        dispensing.department_key,
        sum(dispensing.ddd) as inpatient_ddd_j01
    from dispensing
    inner join medications on dispensing.medication_key = medications.medication_key
    where
        dispensing.encounter_type = 'IP'
        and medications.is_systemic_antibacterial
    group by date_trunc('month', dispensing.dispensed_at)::date, dispensing.institution_id, dispensing.department_key
),

outpatient_prescriptions as (
    select
        institution_id,
        prescription_id,
        min(department_key) as department_key,
        date_trunc('month', min(prescribed_at))::date as month,
        bool_or(is_systemic_antibacterial) as has_antibiotic
    from lines
    where encounter_type = 'OP'
    group by institution_id, prescription_id
),

outpatient as (
    select
        month,
        institution_id,
        department_key,
        count(*) as outpatient_prescriptions,
        count(*) filter (where has_antibiotic) as outpatient_with_antibiotic
    from outpatient_prescriptions
    group by month, institution_id, department_key
),

keys as (
    select
        month,
        institution_id,
        department_key
    from patient_days
    union
    select
        month,
        institution_id,
        department_key
    from inpatient_ddd
    union
    select
        month,
        institution_id,
        department_key
    from outpatient
),

by_department as (
    select
        keys.month,
        keys.institution_id,
        keys.department_key,
        coalesce(inpatient_ddd.inpatient_ddd_j01, 0) as inpatient_ddd_j01,
        coalesce(patient_days.patient_days, 0) as patient_days,
        coalesce(outpatient.outpatient_prescriptions, 0) as outpatient_prescriptions,
        coalesce(outpatient.outpatient_with_antibiotic, 0) as outpatient_with_antibiotic
    from keys
    left join patient_days
        on
            keys.month = patient_days.month
            and keys.institution_id is not distinct from patient_days.institution_id
            and keys.department_key = patient_days.department_key
    left join inpatient_ddd
        on
            keys.month = inpatient_ddd.month
            and keys.institution_id is not distinct from inpatient_ddd.institution_id
            and keys.department_key = inpatient_ddd.department_key
    left join outpatient
        on
            keys.month = outpatient.month
            and keys.institution_id is not distinct from outpatient.institution_id
            and keys.department_key = outpatient.department_key
),

hospital as (
    select
        month,
        institution_id,
        'ALL' as department_key,
        sum(inpatient_ddd_j01) as inpatient_ddd_j01,
        sum(patient_days) as patient_days,
        sum(outpatient_prescriptions) as outpatient_prescriptions,
        sum(outpatient_with_antibiotic) as outpatient_with_antibiotic
    from by_department
    group by month, institution_id
),

group_total as (
    select
        month,
        'ALL' as institution_id,
        'ALL' as department_key,
        sum(inpatient_ddd_j01) as inpatient_ddd_j01,
        sum(patient_days) as patient_days,
        sum(outpatient_prescriptions) as outpatient_prescriptions,
        sum(outpatient_with_antibiotic) as outpatient_with_antibiotic
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
        inpatient_ddd_j01::numeric(14, 4) as inpatient_ddd_j01,
        patient_days::int as patient_days,
        round(inpatient_ddd_j01 * 100.0 / nullif(patient_days, 0), 2)::numeric(10, 2) as ddd_per_100_patient_days,
        {{ var('target_ddd_per_100_patient_days') }}::numeric(10, 2) as target_ddd_per_100_patient_days,
        outpatient_prescriptions::int as outpatient_prescriptions,
        outpatient_with_antibiotic::int as outpatient_with_antibiotic,
        round(outpatient_with_antibiotic::numeric / nullif(outpatient_prescriptions, 0), 4)::numeric(6, 4)
            as outpatient_antibiotic_share,
        {{ var('target_outpatient_antibiotic_share') }}::numeric(6, 4) as target_outpatient_share
    from unioned
)

select * from final
