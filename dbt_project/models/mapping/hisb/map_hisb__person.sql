-- Hospital B's registrations (brxx) as standard persons (std_person): one row per brid. Direct
-- identifiers leave only as keyed HMACs (macros/standard_identifier.sql), as Hospital A's do,
-- so the patient index compares the two hospitals' people on the same keys. A passport or no
-- document gives no card key: such a person links by name, birth date, sex and phone alone.
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

patients as (
    select * from {{ ref('stg_hisb__patients') }}
),

-- staging passes no phone on: it is read from the published raw rows (same published and
-- latest-version rule) and only its HMAC leaves this model
raw_patients as (
    {{ published_rows('raw_hisb', 'brxx') }}
),

versioned as (
    select
        *,
        xgsj as updated_at
    from raw_patients
),

latest_raw as (
    {{ latest_version('versioned', 'brid', 'xgsj') }}
),

phones as (
    select
        brid as patient_id,
        nullif(regexp_replace(
            regexp_replace({{ to_halfwidth('lxdh') }}, '[^0-9]', '', 'g'),
            '^(0086|86)(1[0-9]{10})$',
            '\2'
        ), '') as phone_digits
    from latest_raw
),

comparable as (
    select
        patients.*,
        {{ mpi_match_name('patients.patient_name') }} as match_name,
        case
            when length(patients.id_card_no) = 18 then left(patients.id_card_no, 17)
        end as id_card_stem,
        phones.phone_digits
    from patients
    left join phones on patients.patient_id = phones.patient_id
),

final as (
    select
        {{ standard_key('comparable.patient_id::text') }} as person_key,
        source_system.institution_id,
        source_system.source_system,
        comparable.patient_id::text as source_record_id,
        comparable.sex,
        comparable.birth_date,
        comparable.birth_date_status,
        comparable.registered_at,
        comparable.updated_at,
        coalesce(comparable.is_id_card_valid, false) as is_id_card_valid,
        case
            when comparable.is_id_card_valid then left(comparable.id_card_no, 2)
        end as id_card_region_code,
        case
            when not comparable.is_id_card_valid then null
            when substr(comparable.id_card_no, 17, 1)::int % 2 = 1 then 'M'
            else 'F'
        end as id_card_sex,
        case
            when comparable.is_id_card_valid
                then {{ parse_cn_date('substr(comparable.id_card_no, 7, 8)') }}
        end as id_card_birth_date,
        {{ standard_identifier('hisb', 'name_key', 'comparable.match_name', 'mpi_name:') }},
        {{ standard_identifier_neighbours('hisb', 'name_deletion_keys', 'comparable.match_name', 'name', false) }},
        {{ standard_identifier_neighbours('hisb', 'name_position_keys', 'comparable.match_name', 'name', true) }},
        {{ standard_identifier('hisb', 'id_card_key', 'comparable.id_card_no', 'mpi_id_card:') }},
        {{ standard_identifier_neighbours('hisb', 'id_card_deletion_keys', 'comparable.id_card_no', 'id_card', false) }},
        {{ standard_identifier_neighbours('hisb', 'id_card_position_keys', 'comparable.id_card_no', 'id_card', true) }},
        {{ standard_identifier('hisb', 'id_card_stem_key', 'comparable.id_card_stem', 'mpi_id_card_stem:') }},
        {{ standard_identifier('hisb', 'person_id_card_key', 'case when comparable.is_id_card_valid then comparable.id_card_no end', 'id_card:') }},
        {{ standard_identifier('hisb', 'phone_key', 'comparable.phone_digits', 'mpi_phone:') }},
        comparable.data_source
    from comparable
    cross join source_system
)

select * from final
