-- One row per HIS registration (patient_id) and the person it belongs to (patient_key), from
-- the master patient index (int_mpi__*): the same valid identity card number, or a
-- Fellegi–Sunter score over name, birth date, sex, phone and card number, makes one person.
-- The key is a keyed HMAC (hdp_private.pseudonym) of the person's canonical member: its valid
-- card number, else its smallest HIS id. It is stable across runs and, for a person with a
-- valid card, equal to the key the card alone gave before; it reveals neither value.
-- A table (as all intermediate models): the HMAC is computed once per build, not per consumer.

with

clusters as (
    select * from {{ ref('int_mpi__clusters') }}
),

registrations as (
    select * from {{ ref('int_mpi__registrations') }}
),

-- the canonical card's pseudonym is the standard's (std_person.person_id_card_key, the keyed
-- HMAC of 'id_card:<number>'), so a rotated pseudonym key changes every patient_key when the
-- standard's view and this model are rebuilt
persons as (
    select * from {{ ref('std_person') }}
    where source_system = 'his'
),

cluster_members as (
    select
        clusters.cluster_id,
        min(registrations.id_card_key) filter (where registrations.is_id_card_valid) as id_card_key,
        min(persons.person_id_card_key) filter (where registrations.is_id_card_valid) as person_id_card_key,
        min(clusters.patient_id) as first_patient_id
    from clusters
    inner join registrations on clusters.patient_id = registrations.patient_id
    left join persons on registrations.person_key = persons.person_key
    group by clusters.cluster_id
),

canonical as (
    select
        cluster_id,
        -- the prefix keeps a card number and a HIS id from ever colliding. A cluster holds at
        -- most one valid card number (int_mpi__clusters); when one number was kept apart under
        -- two different names, the cluster registered first keeps the card's key
        case
            when
                id_card_key is not null
                and row_number() over (partition by id_card_key order by first_patient_id) = 1
                then person_id_card_key
            else hdp_private.pseudonym('his_patient_id:' || first_patient_id::text)
        end as patient_key
    from cluster_members
),

final as (
    select
        clusters.patient_id,
        registrations.person_key,
        canonical.patient_key,
        clusters.person_match_basis
    from clusters
    inner join registrations on clusters.patient_id = registrations.patient_id
    inner join canonical on clusters.cluster_id = canonical.cluster_id
)

select * from final
