-- One row per HIS registration and the cluster (person) it belongs to: the connected components
-- of the accepted links (both rules), found by a recursive walk.
-- A cluster never holds two valid card numbers: when links join two card numbers (through
-- registrations without a valid card), the holders of each number stay one person each and
-- every other registration of the component goes with its highest-scoring direct link to a
-- card holder, or stands alone (the pairs left out are listed in int_mpi__review_queue).
with recursive

registrations as (
    select * from {{ ref('int_mpi__registrations') }}
),

links as (
    select * from {{ ref('int_mpi__links') }}
),

edges as (
    select
        patient_id_a as from_id,
        patient_id_b as to_id,
        match_rule,
        score
    from links
    union all
    select
        patient_id_b as from_id,
        patient_id_a as to_id,
        match_rule,
        score
    from links
),

-- every registration reachable from each linked one; union (not union all) ends the walk
reach (patient_id, reached_id) as (
    select distinct
        from_id as patient_id,
        from_id as reached_id
    from edges
    union
    select
        reach.patient_id,
        edges.to_id as reached_id
    from reach
    inner join edges on reach.reached_id = edges.from_id
),

components as (
    select
        registrations.patient_id,
        registrations.is_id_card_valid,
        registrations.id_card_key,
        coalesce(min(reach.reached_id), registrations.patient_id) as component_id
    from registrations
    left join reach on registrations.patient_id = reach.patient_id
    group by registrations.patient_id, registrations.is_id_card_valid, registrations.id_card_key
),

component_cards as (
    select
        component_id,
        count(distinct id_card_key) filter (where is_id_card_valid) as valid_cards
    from components
    group by component_id
),

-- in a component with two card numbers: each number's holders, keyed by the first of them
card_holder_clusters as (
    select
        components.patient_id,
        min(components.patient_id) over (
            partition by components.component_id, components.id_card_key
        ) as cluster_id
    from components
    inner join component_cards on components.component_id = component_cards.component_id
    where component_cards.valid_cards > 1 and components.is_id_card_valid
),

best_card_holder as (
    select distinct on (edges.from_id)
        edges.from_id as patient_id,
        card_holder_clusters.cluster_id
    from edges
    inner join card_holder_clusters on edges.to_id = card_holder_clusters.patient_id
    order by edges.from_id asc, edges.score desc, edges.to_id asc
),

resolved as (
    select
        components.patient_id,
        components.is_id_card_valid,
        component_cards.valid_cards > 1 as is_conflict_resolved,
        case
            when component_cards.valid_cards <= 1 then components.component_id
            when components.is_id_card_valid then card_holder_clusters.cluster_id
            else coalesce(best_card_holder.cluster_id, components.patient_id)
        end as cluster_id
    from components
    inner join component_cards on components.component_id = component_cards.component_id
    left join card_holder_clusters on components.patient_id = card_holder_clusters.patient_id
    left join best_card_holder
        on
            components.patient_id = best_card_holder.patient_id
            and not components.is_id_card_valid
),

final as (
    select
        patient_id,
        cluster_id,
        count(*) over (partition by cluster_id)::int as cluster_size,
        case
            when is_id_card_valid then 'id_card'
            when count(*) over (partition by cluster_id) > 1 then 'probabilistic'
            else 'his_patient_id'
        end as person_match_basis,
        is_conflict_resolved
    from resolved
)

select * from final
