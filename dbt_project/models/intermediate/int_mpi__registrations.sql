-- One row per HIS registration with the attributes the master patient index compares. No
-- clear identifier is stored: name, card number, the card's first 17 characters and phone are
-- kept as keyed HMACs (macros/generalise.sql: matching_key; the pseudonym key, which the
-- transformer cannot read), so blocking and equality work on the keys alone (the patient_key
-- itself is computed by int_his__patient_key_map from staging's view). The two
-- comparisons that need the values (one character apart) read staging's view in
-- int_mpi__scored_pairs and store only the level. Sex and birth date stay: the marts
-- generalise them. The phone is read from the published raw rows because staging passes no
-- phone on; the same published/latest-version rule applies.
with

patients as (
    select * from {{ ref('stg_his__patients') }}
),

raw_patients as (
    {{ published_rows('raw_his', 'patients', 'patient_id') }}
),

latest_raw as (
    {{ latest_version('raw_patients', 'patient_id') }}
),

phones as (
    select
        patient_id,
        -- digits only (half-width first), and a +86 / 0086 country prefix dropped
        regexp_replace(
            regexp_replace({{ to_halfwidth('phone') }}, '[^0-9]', '', 'g'),
            '^(0086|86)(1[0-9]{10})$',
            '\2'
        ) as phone_digits
    from latest_raw
),

comparable as (
    select
        patients.patient_id,
        {{ mpi_match_name('patients.patient_name') }} as match_name,
        nullif(patients.sex, 'U') as sex,
        patients.birth_date,
        patients.id_card_no,
        coalesce(patients.is_id_card_valid, false) as is_id_card_valid,
        -- an 18-character number without its check character: blocks a mistyped check digit
        case
            when length(patients.id_card_no) = 18 then left(patients.id_card_no, 17)
        end as id_card_stem,
        nullif(phones.phone_digits, '') as phone
    from patients
    left join phones on patients.patient_id = phones.patient_id
),

final as (
    select
        patient_id,
        {{ matching_key('name', 'match_name') }} as name_key,
        sex,
        birth_date,
        {{ matching_key('id_card', 'id_card_no') }} as id_card_key,
        is_id_card_valid,
        {{ matching_key('id_card_stem', 'id_card_stem') }} as id_card_stem_key,
        {{ matching_key('phone', 'phone') }} as phone_key
    from comparable
)

select * from final
