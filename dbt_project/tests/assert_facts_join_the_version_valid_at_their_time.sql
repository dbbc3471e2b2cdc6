-- Facts point at the type-2 version of the same durable key whose period holds the fact's
-- time. Rows returned are fact rows that point at another key's version, at a version whose
-- period does not hold them, or at the unknown version though their key has one in time.
with

checks as (
    select 'fct_encounter.doctor' as fact, fact.encounter_key as fact_key,
        fact.doctor_key::text as durable_key, fact.started_at as fact_at,
        history.doctor_key::text as version_durable_key, history.valid_from, history.valid_to,
        fact.doctor_version_key = '-1' as is_unknown_version
    from {{ ref('fct_encounter') }} as fact
    left join {{ ref('dim_doctor_history') }} as history
        on fact.doctor_version_key = history.doctor_version_key
    union all
    select 'fct_encounter.department', fact.encounter_key, fact.department_key,
        fact.started_at, history.department_key, history.valid_from, history.valid_to,
        fact.department_version_key = '-1'
    from {{ ref('fct_encounter') }} as fact
    left join {{ ref('dim_department_history') }} as history
        on fact.department_version_key = history.department_version_key
    union all
    select 'fct_encounter.patient', fact.encounter_key, fact.patient_key,
        fact.started_at, history.patient_key, history.valid_from, history.valid_to,
        fact.patient_version_key = '-1'
    from {{ ref('fct_encounter') }} as fact
    left join {{ ref('dim_patient_history') }} as history
        on fact.patient_version_key = history.patient_version_key
    union all
    select 'fct_dispensing.medication', fact.dispense_id::text, fact.medication_key,
        fact.dispensed_at, history.medication_key, history.valid_from, history.valid_to,
        fact.medication_version_key = '-1'
    from {{ ref('fct_dispensing') }} as fact
    left join {{ ref('dim_medication_history') }} as history
        on fact.medication_version_key = history.medication_version_key
    union all
    select 'fct_prescription_line.medication', fact.line_id::text, fact.medication_key,
        fact.prescribed_at, history.medication_key, history.valid_from, history.valid_to,
        fact.medication_version_key = '-1'
    from {{ ref('fct_prescription_line') }} as fact
    left join {{ ref('dim_medication_history') }} as history
        on fact.medication_version_key = history.medication_version_key
    where fact.prescribed_at is not null
)

select *
from checks
where
    version_durable_key is distinct from durable_key
    or not (fact_at >= valid_from and fact_at < valid_to)
    or (is_unknown_version and durable_key not in ('-1'))
