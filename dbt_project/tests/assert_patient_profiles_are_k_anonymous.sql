{{ config(tags=['k_anonymity']) }}
-- k-anonymity across the patient dimensions, as an analyst can join them: a person's profile
-- is their dim_patient quasi-identifiers and their whole dim_patient_history (province and
-- period of each version). Rows returned are profiles fewer than k persons share, with the
-- count (k = var k_anonymity; the unknown member left out).
with

histories as (
    select
        patient_key,
        string_agg(
            coalesce(residence_province, '') || '@' || valid_from::text || '-' || valid_to::text,
            ',' order by valid_from
        ) as residence_history
    from {{ ref('dim_patient_history') }}
    where not is_unknown_member
    group by patient_key
),

profiles as (
    select
        patients.sex,
        patients.birth_year,
        patients.age_band,
        patients.birth_region_code,
        patients.first_registered_month,
        histories.residence_history
    from {{ ref('dim_patient') }} as patients
    left join histories on patients.patient_key = histories.patient_key
    where not patients.is_unknown_member
)

{{ k_anonymity_violations(
    'profiles',
    ['sex', 'birth_year', 'age_band', 'birth_region_code', 'first_registered_month', 'residence_history'],
    k_anonymity_k(),
) }}
