-- Pairs of HIS registrations worth comparing (blocking): only registrations that share a
-- birth date, the first 17 characters of the ID card number, a phone number, or a name and
-- birth year meet, so the comparison grows with the block sizes, not with the square of the
-- registry. Pairs whose card numbers are both valid and different are left out: no score may
-- link them. One row per pair, patient_id_a < patient_id_b, with the blocks it met in. The
-- blocks compare keyed HMACs (int_mpi__registrations), never the values.
with

registrations as (
    select * from {{ ref('int_mpi__registrations') }}
),

-- one row per registration and blocking key, carrying the card so that pairs of two valid,
-- different numbers are dropped in the join itself (the planner then never pairs the registry)
blocking_keys as (
    select
        registrations.patient_id,
        registrations.is_id_card_valid,
        registrations.id_card_key,
        blocking.block,
        blocking.block_value
    from registrations
    cross join
        lateral (
            values
            ('birth_date', registrations.birth_date::text),
            ('id_card_stem', registrations.id_card_stem_key),
            ('phone', registrations.phone_key),
            ('name_birth_year', registrations.name_key || '|' || extract(year from registrations.birth_date)::text)
        ) as blocking (block, block_value)
    where blocking.block_value is not null
),

pairs as (
    select
        key_a.patient_id as patient_id_a,
        key_b.patient_id as patient_id_b,
        key_a.block
    from blocking_keys as key_a
    inner join blocking_keys as key_b
        on
            key_a.block = key_b.block
            and key_a.block_value = key_b.block_value
            and key_a.patient_id < key_b.patient_id
    where not (key_a.is_id_card_valid and key_b.is_id_card_valid and key_a.id_card_key <> key_b.id_card_key)
),

final as (
    select
        patient_id_a,
        patient_id_b,
        string_agg(distinct block, ',' order by block) as blocks
    from pairs
    group by patient_id_a, patient_id_b
)

select * from final
