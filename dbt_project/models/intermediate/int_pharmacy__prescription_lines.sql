-- One row per prescription line with its prescription, drug and HIS keys resolved the way
-- fct_encounter resolves them (int_his__patient_key_map, the surviving visit, staging's
-- doctors and departments), so the two facts join on encounter_key, patient_key, ...
-- Nothing is dropped: an unknown drug code keeps its line with medication_key '-1'.
with

lines as (
    select * from {{ ref('stg_pharmacy__prescription_lines') }}
),

prescriptions as (
    select * from {{ ref('stg_pharmacy__prescriptions') }}
),

drugs as (
    select * from {{ ref('stg_pharmacy__drugs') }}
),

visit_resolution as (
    select * from {{ ref('int_his__outpatient_visits_resolved') }}
),

encounters as (
    select * from {{ ref('int_encounters__unioned') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

doctors as (
    select source_record_id::int as doctor_id
    from {{ ref('std_practitioner') }}
    where source_system = 'his'
),

departments as (
    select local_unit_code as dept_code
    from {{ ref('std_organisation_unit') }}
    where source_system = 'his'
),

keyed as (
    select
        lines.*,
        prescriptions.prescription_id is null as has_unknown_prescription,
        prescriptions.encounter_type,
        case
            when prescriptions.encounter_type = 'OP'
                then 'OP-' || coalesce(visit_resolution.surviving_visit_id, prescriptions.visit_id)::text
            when prescriptions.encounter_type = 'IP'
                then 'IP-' || prescriptions.admission_id::text
        end as encounter_key,
        prescriptions.patient_id,
        prescriptions.doctor_id,
        prescriptions.dept_code,
        prescriptions.prescription_type,
        prescriptions.prescribed_at
    from lines
    left join prescriptions on lines.prescription_id = prescriptions.prescription_id
    left join visit_resolution
        on
            prescriptions.encounter_type = 'OP'
            and prescriptions.visit_id = visit_resolution.visit_id
),

final as (
    select
        keyed.line_id,
        keyed.prescription_id,
        keyed.line_no,
        keyed.encounter_type,
        keyed.encounter_key,
        coalesce(key_map.patient_key, '-1') as patient_key,
        coalesce(doctors.doctor_id, -1) as doctor_key,
        coalesce(departments.dept_code, '-1') as department_key,
        keyed.prescribed_at,
        keyed.prescription_type,
        coalesce(drugs.drug_code, '-1') as medication_key,
        keyed.drug_code as drug_code_recorded,
        drugs.atc_code,
        coalesce(drugs.atc_code like 'J01%', false) as is_systemic_antibacterial,
        keyed.dose_per_time,
        keyed.dose_unit,
        keyed.frequency,
        keyed.days_supplied,
        keyed.quantity,
        -- no drug is dispensed by the box (盒): the quantity counts the drug's own unit, as
        -- its dispensing row confirms, so the unit is the drug's and the line is flagged
        case
            when drugs.drug_code is not null and keyed.unit_recorded = '盒' then drugs.unit
            else keyed.unit_recorded
        end as unit,
        keyed.unit_recorded,
        coalesce(keyed.unit_recorded = '盒' and drugs.unit in ('片', '粒'), false) as is_unit_mixup,
        -- DDDs = quantity x strength / DDD (both in mg); 'UD' DDDs count units. The same
        -- expression is in int_pharmacy__dispensing.
        round(
            case
                when drugs.ddd_unit = 'UD' then keyed.quantity / nullif(drugs.ddd_value, 0)
                else keyed.quantity * drugs.strength_mg / nullif(drugs.ddd_mg, 0)
            end,
            4
        ) as ddd,
        drugs.drug_code is null as has_unknown_drug,
        key_map.patient_key is null as has_unknown_patient,
        doctors.doctor_id is null as has_unknown_doctor,
        departments.dept_code is null as has_unknown_department,
        encounters.encounter_key is null as has_unknown_encounter,
        keyed.has_unknown_prescription,
        keyed.data_source
    from keyed
    left join drugs on keyed.drug_code = drugs.drug_code
    left join key_map on keyed.patient_id = key_map.patient_id
    left join doctors on keyed.doctor_id = doctors.doctor_id
    left join departments on keyed.dept_code = departments.dept_code
    left join encounters on keyed.encounter_key = encounters.encounter_key
)

select * from final
