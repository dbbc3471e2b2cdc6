{#- department analysts see the patients with an encounter in their departments -#}
{{ config(post_hook=[
    "{{ enable_department_rls('patient_key in (select audit.analyst_patient_keys())') }}",
    "{{ record_transform() }}",
]) }}

-- One row per person, plus the unknown member ('-1') that orphan facts point at.
-- Pseudonymous by construction: no name, card number, phone, address or MRN; the birth date is
-- reduced to a year and an age band, the card to its province code, the first registration to
-- a month, and a combination of these (with the residence history) that fewer than k persons
-- share is suppressed (int_patients__generalised; tested by k_anonymity).
with

patients as (
    select * from {{ ref('int_patients__generalised') }}
),

known as (
    select
        patient_key,
        sex,
        birth_year,
        age_band,
        birth_region_code,
        his_record_count::int as his_record_count,
        first_registered_month,
        is_id_card_valid,
        false as is_unknown_member,
        data_source
    from patients
),

unknown_member as (
    select
        '-1' as patient_key,
        'U' as sex,
        null::int as birth_year,
        'unknown' as age_band,
        null::text as birth_region_code,
        0 as his_record_count,
        null::date as first_registered_month,
        false as is_id_card_valid,
        true as is_unknown_member,
        null::text as data_source
)

select * from known
union all
select * from unknown_member
