-- Why registrations were merged: one row per accepted link that holds within the final
-- person, with the person's patient_key, the rule, the score and the per-field agreement.
-- No name, card number, phone or birth date; HIS ids stay in this restricted schema.
with

links as (
    select * from {{ ref('int_mpi__links') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

final as (
    select
        key_a.patient_key,
        links.patient_id_a,
        links.patient_id_b,
        links.match_rule,
        links.score,
        links.name_level,
        links.birth_date_level,
        links.sex_level,
        links.phone_level,
        links.id_card_level
    from links
    inner join key_map as key_a on links.patient_id_a = key_a.patient_id
    inner join key_map as key_b on links.patient_id_b = key_b.patient_id
    where key_a.patient_key = key_b.patient_key
)

select * from final
