{#- department analysts see the patients with an encounter in their departments -#}
{{ config(post_hook=[
    "{{ enable_department_rls('patient_key in (select audit.analyst_patient_keys())') }}",
    "{{ record_transform() }}",
]) }}

-- Type-2 patient dimension: one row per period in which a person lived in the same province
-- (valid_from <= t < valid_to; periods start on the first of a month), plus the unknown member
-- '-1'. A person whose registrations hold no usable address, or whose residence history is
-- too rare to publish (int_patients__generalised: fewer than k persons share the profile),
-- has one period with an unknown province. patient_key (= dim_patient) is the durable key.
-- Pseudonymous: the province (省 / 自治区 / 直辖市) is the finest place kept.
with

history as (
    select * from {{ ref('int_history__patients') }}
),

patients as (
    select * from {{ ref('int_patients__generalised') }}
),

known as (
    select
        history.version_key as patient_version_key,
        history.patient_key,
        history.residence_province,
        history.version_number,
        history.valid_from,
        history.valid_to,
        history.is_current
    from history
    inner join patients on history.patient_key = patients.patient_key
    where not patients.is_residence_unpublished
),

without_residence as (
    select
        {{ version_key('patients.patient_key', "timestamp '1900-01-01'") }} as patient_version_key,
        patients.patient_key,
        null::text as residence_province,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current
    from patients
    where patients.is_residence_unpublished
),

unknown_member as (
    select
        '-1' as patient_version_key,
        '-1' as patient_key,
        null::text as residence_province,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current
)

select
    *,
    false as is_unknown_member
from known
union all
select
    *,
    false as is_unknown_member
from without_residence
union all
select
    *,
    true as is_unknown_member
from unknown_member
