{#- department analysts see the patients with an encounter in their departments -#}
{{ config(post_hook=[
    "{{ enable_department_rls('patient_key in (select audit.analyst_patient_keys())') }}",
    "{{ record_transform() }}",
]) }}

-- One row per person, plus the unknown member ('-1') that orphan facts point at.
-- Pseudonymous by construction: no name, card number, phone, address or MRN; birth date is
-- reduced to a year and the card to its province code.
with

patients as (
    select * from {{ ref('int_patients__deduplicated') }}
),

known as (
    select
        patient_key,
        sex,
        extract(year from birth_date)::int as birth_year,
        -- as of the build date; fct_encounter carries the band at each encounter
        {{ age_band(age_in_years('birth_date', 'current_date')) }} as age_band,
        birth_region_code,
        his_record_count,
        first_registered_at,
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
        null::timestamp as first_registered_at,
        false as is_id_card_valid,
        true as is_unknown_member,
        null::text as data_source
)

select * from known
union all
select * from unknown_member
