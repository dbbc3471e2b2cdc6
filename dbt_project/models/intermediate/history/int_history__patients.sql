-- Type-2 history of each person (patient_key): the province of residence (macros/generalise.sql:
-- province_of the address's district), taken from the most recently updated registration of
-- the person that has an address. Generalised before the history is built: a change counts
-- from the first day of the month it was recorded in (the last version of a month wins), and a
-- move within a province opens no period. A person's registrations are merged first
-- (int_his__patient_key_map), so a duplicate registration adds versions to the one person; see
-- macros/type2_history.sql. The marts publish these periods unless the person's profile is too
-- rare (int_patients__generalised).
with

registration_versions as (
    select
        person_key,
        residence_district,
        updated_at
    from {{ ref('std_person_version') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

generalised_versions as (
    select
        key_map.patient_key,
        key_map.patient_id,
        {{ province_of('registration_versions.residence_district') }} as residence_province,
        {{ month_start('registration_versions.updated_at') }}::timestamp as month_start,
        registration_versions.updated_at
    from registration_versions
    inner join key_map on registration_versions.person_key = key_map.person_key
),

person_versions as (
    select distinct on (patient_key, month_start)
        patient_key,
        residence_province,
        month_start as updated_at
    from generalised_versions
    where residence_province is not null
    order by
        patient_key asc,
        month_start asc,
        updated_at desc,
        patient_id desc
),

history as (
    {{ type2_history('person_versions', 'patient_key', ['residence_province']) }}
)

select * from history
