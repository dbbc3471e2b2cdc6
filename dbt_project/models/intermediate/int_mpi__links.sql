-- Accepted links between two HIS registrations: the same valid ID card number (match_rule
-- 'id_card'), or a Fellegi–Sunter score at or above the match threshold ('probabilistic').
with

scored_pairs as (
    select * from {{ ref('int_mpi__scored_pairs') }}
),

final as (
    select
        patient_id_a,
        patient_id_b,
        case decision
            when 'id_card' then 'id_card'
            else 'probabilistic'
        end as match_rule,
        score,
        name_level,
        birth_date_level,
        sex_level,
        phone_level,
        id_card_level
    from scored_pairs
    where decision in ('id_card', 'match')
)

select * from final
