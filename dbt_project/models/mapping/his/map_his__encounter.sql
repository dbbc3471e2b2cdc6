-- The HIS's outpatient visits and inpatient admissions as standard encounters (std_encounter):
-- one row per visit or admission, source_record_id 'OP|<visit_id>' / 'IP|<admission_id>' (the
-- two tables number their rows independently).
-- A visit re-sent under a second visit_id (same patient, department, doctor and instant) is a
-- source artefact, so it is resolved here, with the HIS's cleaning, not in integration: every
-- visit keeps its row and names the encounter it survives as (the lowest visit_id).
with

source_system as (
    select * from {{ ref('map_his__source_system') }}
),

visits as (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

admissions as (
    select * from {{ ref('stg_his__inpatient_admissions') }}
),

resolved_visits as (
    select
        visits.*,
        case
            -- without a patient the "same visit" cannot be recognised: keep each one
            when visits.patient_id is null then visits.visit_id
            else min(visits.visit_id) over (
                    partition by visits.patient_id, visits.dept_code, visits.doctor_id, visits.visit_at
                )
        end as surviving_visit_id,
        case
            when visits.patient_id is null then 1
            else count(*) over (
                    partition by visits.patient_id, visits.dept_code, visits.doctor_id, visits.visit_at
                )
        end as duplicate_group_size
    from visits
),

outpatient as (
    select
        'OP|' || visit_id::text as source_record_id,
        'OP|' || surviving_visit_id::text as surviving_record_id,
        -- 急诊 is the HIS's emergency registration
        case when visit_type = '急诊' then 'emergency' else 'outpatient' end as encounter_class,
        'OP' as local_encounter_type,
        patient_id::text as person_record_id,
        doctor_id::text as practitioner_record_id,
        dept_code as local_unit_code,
        null::text as ward_code,
        visit_type as local_visit_type,
        visit_at as started_at,
        null::timestamp as ended_at,
        lower(status) as status,
        null::text as discharge_status,
        fee as amount,
        is_fee_negative as is_amount_negative,
        false as is_discharge_before_admission,
        duplicate_group_size::int as duplicate_group_size,
        updated_at,
        data_source,
        _extracted_at
    from resolved_visits
),

inpatient as (
    select
        'IP|' || admission_id::text as source_record_id,
        'IP|' || admission_id::text as surviving_record_id,
        'inpatient' as encounter_class,
        'IP' as local_encounter_type,
        patient_id::text as person_record_id,
        doctor_id::text as practitioner_record_id,
        dept_code as local_unit_code,
        ward as ward_code,
        null::text as local_visit_type,
        admitted_at as started_at,
        discharged_at as ended_at,
        case
            when discharged_at is null then 'in_hospital'
            else coalesce(discharge_status, 'discharged')
        end as status,
        discharge_status,
        total_cost as amount,
        is_total_cost_negative as is_amount_negative,
        is_discharge_before_admission,
        1 as duplicate_group_size,
        updated_at,
        data_source,
        _extracted_at
    from admissions
),

unioned as (
    select * from outpatient
    union all
    select * from inpatient
),

final as (
    select
        {{ standard_key('unioned.source_record_id') }} as encounter_key,
        source_system.institution_id,
        source_system.source_system,
        unioned.source_record_id,
        unioned.encounter_class,
        unioned.local_encounter_type,
        {{ standard_key('unioned.surviving_record_id') }} as surviving_encounter_key,
        unioned.source_record_id <> unioned.surviving_record_id as is_duplicate,
        unioned.duplicate_group_size,
        {{ standard_key('unioned.person_record_id') }} as person_key,
        {{ standard_key('unioned.practitioner_record_id') }} as practitioner_key,
        {{ standard_key('unioned.local_unit_code') }} as organisation_unit_key,
        unioned.local_unit_code,
        unioned.ward_code,
        unioned.local_visit_type,
        unioned.started_at,
        unioned.ended_at,
        unioned.status,
        unioned.discharge_status,
        unioned.amount::numeric(12, 2) as amount,
        unioned.is_amount_negative,
        unioned.is_discharge_before_admission,
        unioned.updated_at,
        unioned.data_source,
        unioned._extracted_at as extracted_at
    from unioned
    cross join source_system
)

select * from final
