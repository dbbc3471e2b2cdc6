-- Hospital B's outpatient registrations (mzgh) and inpatient stays (zyjl) as standard
-- encounters: source_record_id 'OP|<ghxh>' / 'IP|<zyh>', as Hospital A's. The times are the
-- ones staging parsed from text; a registration whose time no format read keeps its row with
-- started_at null (stg_hisb__outpatient_visits.visit_at_status says why). This vendor's system
-- numbers a re-sent registration as the same ghxh, so no visit is a duplicate of another here.
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

visits as (
    select * from {{ ref('stg_hisb__outpatient_visits') }}
),

stays as (
    select * from {{ ref('stg_hisb__inpatient_stays') }}
),

outpatient as (
    select
        'OP|' || visit_id::text as source_record_id,
        case when visit_type = '急诊' then 'emergency' else 'outpatient' end as encounter_class,
        'OP' as local_encounter_type,
        patient_id::text as person_record_id,
        doctor_code as practitioner_record_id,
        dept_code as local_unit_code,
        null::text as ward_code,
        visit_type as local_visit_type,
        visit_at as started_at,
        null::timestamp as ended_at,
        status,
        null::text as discharge_status,
        fee as amount,
        is_fee_negative as is_amount_negative,
        false as is_discharge_before_admission,
        updated_at,
        data_source,
        _extracted_at
    from visits
),

inpatient as (
    select
        'IP|' || admission_id as source_record_id,
        'inpatient' as encounter_class,
        'IP' as local_encounter_type,
        patient_id::text as person_record_id,
        attending_doctor_code as practitioner_record_id,
        dept_code as local_unit_code,
        ward as ward_code,
        null::text as local_visit_type,
        admitted_at as started_at,
        discharged_at as ended_at,
        case
            when discharged_at_status = 'in_hospital' then 'in_hospital'
            else coalesce(discharge_status, 'discharged')
        end as status,
        discharge_status,
        total_cost as amount,
        false as is_amount_negative,
        discharged_at_status = 'before_admission' as is_discharge_before_admission,
        updated_at,
        data_source,
        _extracted_at
    from stays
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
        {{ standard_key('unioned.source_record_id') }} as surviving_encounter_key,
        false as is_duplicate,
        1 as duplicate_group_size,
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
