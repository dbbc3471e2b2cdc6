-- One row per prescription line (std_medication_order_line, every source and institution)
-- with its product and HIS keys resolved the way fct_encounter resolves them
-- (int_his__patient_key_map, the surviving visit, the HIS's doctors and departments), so the
-- two facts join on encounter_key, patient_key, ... The HIS references are the ids of the
-- line's own institution. Nothing is dropped: an unknown drug code keeps its line with
-- medication_key '-1'.
with

lines as (
    select * from {{ ref('std_medication_order_line') }}
),

products as (
    select * from {{ ref('std_medication_product') }}
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
        case
            when lines.encounter_type = 'OP'
                then 'OP-' || coalesce(visit_resolution.surviving_visit_id::text, lines.visit_id)
            when lines.encounter_type = 'IP'
                then 'IP-' || lines.admission_id
        end as encounter_key
    from lines
    left join visit_resolution
        on
            lines.encounter_type = 'OP'
            and lines.visit_id = visit_resolution.visit_id::text
),

final as (
    select
        keyed.medication_order_line_key,
        keyed.institution_id,
        keyed.source_system,
        keyed.source_record_id as line_id,
        keyed.prescription_id,
        keyed.line_no,
        keyed.encounter_type,
        keyed.encounter_key,
        coalesce(key_map.patient_key, '-1') as patient_key,
        coalesce(doctors.doctor_id, -1) as doctor_key,
        coalesce(departments.dept_code, '-1') as department_key,
        keyed.prescribed_at,
        keyed.prescription_type,
        coalesce(products.medication_product_key, '-1') as medication_key,
        keyed.local_drug_code as drug_code_recorded,
        products.atc_code,
        coalesce(products.atc_code like 'J01%', false) as is_systemic_antibacterial,
        keyed.dose_per_time,
        keyed.dose_unit,
        keyed.frequency,
        keyed.days_supplied,
        keyed.quantity,
        -- no drug is dispensed by the box (盒): the quantity counts the drug's own unit, as
        -- its dispensing row confirms, so the unit is the drug's and the line is flagged
        case
            when products.medication_product_key is not null and keyed.unit_recorded = '盒' then products.unit
            else keyed.unit_recorded
        end as unit,
        keyed.unit_recorded,
        coalesce(keyed.unit_recorded = '盒' and products.unit in ('片', '粒'), false) as is_unit_mixup,
        -- DDDs = quantity x strength / DDD (both in mg); 'UD' DDDs count units (macros/ddd.sql)
        {{ ddds('keyed.quantity', 'products') }} as ddd,
        products.medication_product_key is null as has_unknown_drug,
        key_map.patient_key is null as has_unknown_patient,
        doctors.doctor_id is null as has_unknown_doctor,
        departments.dept_code is null as has_unknown_department,
        encounters.encounter_key is null as has_unknown_encounter,
        keyed.has_unknown_prescription,
        keyed.data_source
    from keyed
    left join products on keyed.medication_product_key = products.medication_product_key
    -- the key map is the HIS's (one institution today): the person key's last part is its id
    left join key_map on split_part(keyed.person_key, ':', 3) = key_map.patient_id::text
    left join doctors on keyed.doctor_id = doctors.doctor_id::text
    left join departments on keyed.local_department_code = departments.dept_code
    left join encounters on keyed.encounter_key = encounters.encounter_key
)

select * from final
