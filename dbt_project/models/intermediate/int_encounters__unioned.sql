-- Outpatient visits (duplicates collapsed) and inpatient admissions in one typed shape:
-- one row per encounter_key ('OP-<visit_id>' / 'IP-<admission_id>').
with

visits as (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

visit_resolution as (
    select * from {{ ref('int_his__outpatient_visits_resolved') }}
),

admissions as (
    select * from {{ ref('stg_his__inpatient_admissions') }}
),

outpatient as (
    select
        'OP-' || visits.visit_id::text as encounter_key,
        'OP' as encounter_type,
        visits.visit_id as source_encounter_id,
        visits.patient_id,
        visits.doctor_id,
        visits.dept_code,
        visits.visit_type,
        visits.visit_at as started_at,
        null::timestamp as ended_at,
        visits.fee as amount,
        visits.is_fee_negative as is_amount_negative,
        false as is_discharge_before_admission,
        visits.status,
        visit_resolution.duplicate_group_size - 1 as duplicates_collapsed,
        visits.data_source,
        visits._extracted_at
    from visits
    inner join visit_resolution
        on
            visits.visit_id = visit_resolution.visit_id
            and not visit_resolution.is_duplicate
),

inpatient as (
    select
        'IP-' || admission_id::text as encounter_key,
        'IP' as encounter_type,
        admission_id as source_encounter_id,
        patient_id,
        doctor_id,
        dept_code,
        null::text as visit_type,
        admitted_at as started_at,
        discharged_at as ended_at,
        total_cost as amount,
        is_total_cost_negative as is_amount_negative,
        is_discharge_before_admission,
        case
            when discharged_at is null then 'in_hospital'
            else coalesce(discharge_status, 'discharged')
        end as status,
        0 as duplicates_collapsed,
        data_source,
        _extracted_at
    from admissions
),

unioned as (
    select * from outpatient
    union all
    select * from inpatient
)

select * from unioned
