-- One row per HIS registration with the attributes the master patient index compares, from the
-- standard (std_person). No clear identifier is here, nor anywhere in the standard: name, card
-- number, the card's first 17 characters and phone are keyed HMACs (map_<source>__person
-- passes them through macros/standard_identifier.sql; the pseudonym key is one the
-- transformer cannot read), so blocking and equality work on the keys alone, and "one
-- character apart" on the one-character neighbourhoods (the *_deletion_keys and
-- *_position_keys arrays). Sex and birth date stay: the marts generalise them.
-- The index links the HIS's registrations (patient_id); persons of other sources join it
-- when it is keyed by person_key (docs/standard-model.md).
with

persons as (
    select * from {{ ref('std_person') }}
    where source_system = 'his'
),

final as (
    select
        source_record_id::int as patient_id,
        person_key,
        name_key,
        nullif(sex, 'U') as sex,
        birth_date,
        id_card_key,
        id_card_stem_key,
        is_id_card_valid,
        phone_key,
        name_deletion_keys,
        name_position_keys,
        id_card_deletion_keys,
        id_card_position_keys
    from persons
)

select * from final
