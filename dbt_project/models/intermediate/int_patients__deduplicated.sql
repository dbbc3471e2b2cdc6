-- One row per person (patient_key), merged from their HIS registrations.
-- Demographics survive from the most recently updated registration that has a usable value;
-- a valid identity card fills what no registration has (its digits encode sex and birth date).
-- No direct identifier reaches this model (std_person holds keyed HMACs only).
with

persons as (
    select * from {{ ref('std_person') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

registrations as (
    select
        key_map.patient_key,
        key_map.patient_id,
        persons.sex,
        persons.birth_date,
        persons.is_id_card_valid,
        persons.registered_at,
        persons.updated_at,
        persons.data_source,
        -- what a valid card encodes, read by the mapping where the card is in clear
        persons.id_card_region_code as birth_region_code,
        persons.id_card_sex,
        persons.id_card_birth_date
    from persons
    inner join key_map on persons.person_key = key_map.person_key
),

merged as (
    select
        patient_key,
        (
            array_agg(sex order by updated_at desc, patient_id desc)
            filter (where sex <> 'U')
        )[1] as registered_sex,
        (
            array_agg(birth_date order by updated_at desc, patient_id desc)
            filter (where birth_date is not null)
        )[1] as registered_birth_date,
        max(id_card_sex) as id_card_sex,
        max(id_card_birth_date) as id_card_birth_date,
        max(birth_region_code) as birth_region_code,
        bool_or(is_id_card_valid) as is_id_card_valid,
        count(*) as his_record_count,
        min(registered_at) as first_registered_at,
        max(updated_at) as last_updated_at,
        min(data_source) as data_source
    from registrations
    group by patient_key
),

final as (
    select
        patient_key,
        coalesce(registered_sex, id_card_sex, 'U') as sex,
        case
            when registered_sex is not null then 'registration'
            when id_card_sex is not null then 'id_card'
            else 'unknown'
        end as sex_source,
        case
            when registered_birth_date is not null then registered_birth_date
            when id_card_birth_date <= current_date then id_card_birth_date
        end as birth_date,
        case
            when registered_birth_date is not null then 'registration'
            when id_card_birth_date <= current_date then 'id_card'
            else 'unknown'
        end as birth_date_source,
        birth_region_code,
        is_id_card_valid,
        his_record_count::int as his_record_count,
        first_registered_at,
        last_updated_at,
        data_source
    from merged
)

select * from final
