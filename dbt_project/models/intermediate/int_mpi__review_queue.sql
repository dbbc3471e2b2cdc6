-- Pairs of HIS registrations a person should decide on: a score between the review and the
-- match threshold, one valid card number under two different names, or a probabilistic link set aside because it would have put two valid card
-- numbers into one person. Pairs already in one cluster are left out. No name, card number or
-- phone: the reviewer sees HIS ids, per-field agreement and the score, and looks the
-- registrations up in the HIS.
with

scored_pairs as (
    select * from {{ ref('int_mpi__scored_pairs') }}
),

clusters as (
    select * from {{ ref('int_mpi__clusters') }}
),

queued as (
    select
        *,
        case
            when decision = 'review' and id_card_level = 'same_valid' then 'same_id_card_different_name'
            when decision = 'review' then 'score_between_thresholds'
            else 'conflicting_id_cards'
        end as review_reason
    from scored_pairs
    where decision in ('review', 'match')
),

final as (
    select
        queued.patient_id_a,
        queued.patient_id_b,
        queued.review_reason,
        queued.score,
        queued.name_level,
        queued.birth_date_level,
        queued.sex_level,
        queued.phone_level,
        queued.id_card_level
    from queued
    inner join clusters as cluster_a on queued.patient_id_a = cluster_a.patient_id
    inner join clusters as cluster_b on queued.patient_id_b = cluster_b.patient_id
    where cluster_a.cluster_id <> cluster_b.cluster_id
)

select * from final
