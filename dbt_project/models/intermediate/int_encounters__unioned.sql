-- Outpatient and emergency visits (re-sent copies collapsed) and inpatient stays of the HIS, from
-- the standard (std_encounter): one row per encounter_key ('OP-<visit_id>' / 'IP-<admission_id>',
-- the star's key, which the pharmacy and lab facts also build), with the standard's own key
-- and institution beside it.
with

encounters as (
    select * from {{ ref('std_encounter') }}
    where source_system = 'his'
),

final as (
    select
        local_encounter_type || '-' || {{ standard_record_id('source_record_id') }}::text
            as encounter_key,
        encounter_key as standard_encounter_key,
        institution_id,
        local_encounter_type as encounter_type,
        encounter_class,
        {{ standard_record_id('source_record_id') }} as source_encounter_id,
        person_key,
        -- the HIS's own ids, as the patient index and the dimensions are keyed
        split_part(person_key, ':', 3)::bigint as patient_id,
        split_part(practitioner_key, ':', 3)::bigint as doctor_id,
        local_unit_code as dept_code,
        local_visit_type as visit_type,
        started_at,
        ended_at,
        amount,
        is_amount_negative,
        is_discharge_before_admission,
        status,
        duplicate_group_size - 1 as duplicates_collapsed,
        data_source,
        extracted_at as _extracted_at
    from encounters
    where not is_duplicate
)

select * from final
