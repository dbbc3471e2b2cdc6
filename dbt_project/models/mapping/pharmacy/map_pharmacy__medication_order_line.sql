-- Prescription lines (处方明细) with their prescription's header, as std_medication_order_line.
-- The HIS references (patient, visit/admission, doctor, department) stay the HIS's own ids:
-- the intermediate layer resolves them against the HIS's standard rows. A line whose
-- prescription is missing is kept (has_unknown_prescription).
with

lines as (
    select * from {{ ref('stg_pharmacy__prescription_lines') }}
),

prescriptions as (
    select * from {{ ref('stg_pharmacy__prescriptions') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        lines.line_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || lines.line_id::text
            as medication_order_line_key,
        lines.prescription_id::text as prescription_id,
        lines.line_no::int as line_no,
        prescriptions.encounter_type,
        prescriptions.visit_id::text as visit_id,
        prescriptions.admission_id::text as admission_id,
        -- the pharmacy's patient ids are the HIS's of the same hospital (source 'his')
        source_system.institution_id || ':his:' || prescriptions.patient_id::text as person_key,
        prescriptions.doctor_id::text as doctor_id,
        prescriptions.dept_code as local_department_code,
        prescriptions.diagnosis_icd10_code,
        prescriptions.prescription_type,
        prescriptions.prescribed_at,
        source_system.institution_id || ':' || source_system.source_system || ':' || lines.drug_code
            as medication_product_key,
        lines.drug_code as local_drug_code,
        lines.dose_per_time,
        lines.dose_unit,
        lines.frequency,
        lines.days_supplied::int as days_supplied,
        lines.quantity,
        lines.unit_recorded,
        prescriptions.prescription_id is null as has_unknown_prescription,
        lines.data_source
    from lines
    left join prescriptions on lines.prescription_id = prescriptions.prescription_id
    cross join source_system
)

select * from final
