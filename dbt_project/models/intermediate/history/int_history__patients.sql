-- Type-2 history of each person (patient_key): the district of residence, taken from the most
-- recently updated registration of the person that has an address. A person's registrations
-- are merged first (int_his__patient_key_map), so a duplicate registration adds versions to
-- the one person; see macros/type2_history.sql.
with

registration_versions as (
    select * from {{ ref('stg_his__patient_versions') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

person_versions as (
    select distinct on (key_map.patient_key, registration_versions.updated_at)
        key_map.patient_key,
        registration_versions.residence_district,
        registration_versions.updated_at
    from registration_versions
    inner join key_map on registration_versions.patient_id = key_map.patient_id
    where registration_versions.residence_district is not null
    order by
        key_map.patient_key asc,
        registration_versions.updated_at asc,
        registration_versions.patient_id desc
),

history as (
    {{ type2_history('person_versions', 'patient_key', ['residence_district']) }}
)

select * from history
