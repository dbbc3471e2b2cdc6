-- Every outpatient visit_id and the visit it survives as. The same patient registered with the
-- same department and doctor at the same instant under two visit_ids is one visit re-sent;
-- the lowest visit_id survives, and diagnoses of the others are moved onto it.
with

visits as (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

resolved as (
    select
        visit_id,
        case
            -- without a patient the "same visit" cannot be recognised: keep each one
            when patient_id is null then visit_id
            else min(visit_id) over (
                    partition by patient_id, dept_code, doctor_id, visit_at
                )
        end as surviving_visit_id,
        case
            when patient_id is null then 1
            else count(*) over (partition by patient_id, dept_code, doctor_id, visit_at)
        end as duplicate_group_size
    from visits
),

final as (
    select
        visit_id,
        surviving_visit_id,
        visit_id <> surviving_visit_id as is_duplicate,
        duplicate_group_size::int as duplicate_group_size
    from resolved
)

select * from final
