-- Every HIS outpatient visit_id and the visit it survives as, in the HIS's own ids, for the
-- models that still join on them (prescriptions, lab results). The resolution itself is the
-- HIS's cleaning (map_his__encounter: a visit re-sent under a second visit_id survives as the
-- lowest); this reads it from the standard.
with

encounters as (
    select * from {{ ref('std_encounter') }}
    where source_system = 'his' and local_encounter_type = 'OP'
),

final as (
    select
        {{ standard_record_id('source_record_id') }} as visit_id,
        {{ standard_record_id('surviving_encounter_key', key=true) }} as surviving_visit_id,
        is_duplicate,
        duplicate_group_size
    from encounters
)

select * from final
