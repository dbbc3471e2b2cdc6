-- The HIS's patient registrations as standard persons (std_person): one row per registration
-- (patient_id). Direct identifiers leave only as keyed HMACs (macros/standard_identifier.sql):
-- the patient index matches on them and nothing downstream sees a name, card or phone. The
-- quasi-identifiers a valid card encodes (birth region, sex, birth date) are read here, where
-- the card is in clear, so no later model needs it.
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

patients as (
    select * from {{ ref('stg_his__patients') }}
),

-- staging passes no phone on (no model shows one): it is read from the published raw rows,
-- same published/latest-version rule, and only its HMAC leaves this model
raw_patients as (
    {{ published_rows('raw_his', 'patients') }}
),

latest_raw as (
    {{ latest_version('raw_patients', 'patient_id', 'updated_at') }}
),

phones as (
    select
        patient_id,
        -- digits only (half-width first), and a +86 / 0086 country prefix dropped
        nullif(regexp_replace(
            regexp_replace({{ to_halfwidth('phone') }}, '[^0-9]', '', 'g'),
            '^(0086|86)(1[0-9]{10})$',
            '\2'
        ), '') as phone_digits
    from latest_raw
),

comparable as (
    select
        patients.*,
        {{ mpi_match_name('patients.patient_name') }} as match_name,
        -- an 18-character number without its check character: blocks a mistyped check digit
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
        -- an unknown validity (no card) encodes nothing, as an invalid card
        case
            when not coalesce(comparable.is_id_card_valid, false) then null
            when substr(comparable.id_card_no, 17, 1)::int % 2 = 1 then 'M'
            else 'F'
        end as id_card_sex,
        case
            when comparable.is_id_card_valid
                then {{ parse_cn_date('substr(comparable.id_card_no, 7, 8)') }}
        end as id_card_birth_date,
        {{ standard_identifier('his', 'name_key', 'comparable.match_name', 'mpi_name:') }},
        {{ standard_identifier_neighbours('his', 'name_deletion_keys', 'comparable.match_name', 'name', false) }},
        {{ standard_identifier_neighbours('his', 'name_position_keys', 'comparable.match_name', 'name', true) }},
        {{ standard_identifier('his', 'id_card_key', 'comparable.id_card_no', 'mpi_id_card:') }},
        {{ standard_identifier_neighbours('his', 'id_card_deletion_keys', 'comparable.id_card_no', 'id_card', false) }},
        {{ standard_identifier_neighbours('his', 'id_card_position_keys', 'comparable.id_card_no', 'id_card', true) }},
        {{ standard_identifier('his', 'id_card_stem_key', 'comparable.id_card_stem', 'mpi_id_card_stem:') }},
        {{ standard_identifier('his', 'person_id_card_key', 'case when comparable.is_id_card_valid then comparable.id_card_no end', 'id_card:') }},
        {{ standard_identifier('his', 'phone_key', 'comparable.phone_digits', 'mpi_phone:') }},
        comparable.data_source
    from comparable
    cross join source_system
)

select * from final
