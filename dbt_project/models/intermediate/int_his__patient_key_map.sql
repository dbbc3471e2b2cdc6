-- One row per HIS registration (patient_id) and the person it belongs to (patient_key).
-- Registrations with the same valid identity card number are one person; without a valid card
-- the registration stands alone. The key is a keyed HMAC (hdp_private.pseudonym), so it is
-- stable across runs yet reveals neither the card number nor the HIS id.
-- A table (as all intermediate models): the HMAC is computed once per build, not per consumer.

with

patients as (
    select * from {{ ref('stg_his__patients') }}
),

matched as (
    select
        patient_id,
        case
            when is_id_card_valid then 'id_card'
            else 'his_patient_id'
        end as person_match_basis,
        -- the prefix keeps a card number and a HIS id from ever colliding
        case
            when is_id_card_valid then 'id_card:' || id_card_no
            else 'his_patient_id:' || patient_id::text
        end as person_identifier
    from patients
),

final as (
    select
        patient_id,
        hdp_private.pseudonym(person_identifier) as patient_key,
        person_match_basis
    from matched
)

select * from final
