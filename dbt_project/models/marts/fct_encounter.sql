{{ config(post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"]) }}

-- One row per encounter: an outpatient visit (duplicates collapsed) or an inpatient admission.
-- No row is dropped for a broken reference: it points at the dimension's unknown member and
-- says so in a has_unknown_* flag.
with

encounters as (
    select * from {{ ref('int_encounters__unioned') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

patients as (
    select * from {{ ref('int_patients__deduplicated') }}
),

doctors as (
    select * from {{ ref('stg_his__doctors') }}
),

departments as (
    select * from {{ ref('stg_his__departments') }}
),

joined as (
    select
        encounters.*,
        key_map.patient_key,
        patients.birth_date,
        doctors.doctor_id as known_doctor_id,
        departments.dept_code as known_dept_code
    from encounters
    left join key_map on encounters.patient_id = key_map.patient_id
    left join patients on key_map.patient_key = patients.patient_key
    left join doctors on encounters.doctor_id = doctors.doctor_id
    left join departments on encounters.dept_code = departments.dept_code
),

final as (
    select
        encounter_key,
        encounter_type,
        coalesce(patient_key, '-1') as patient_key,
        coalesce(known_doctor_id, -1) as doctor_key,
        coalesce(known_dept_code, '-1') as department_key,
        to_char(started_at, 'YYYYMMDD')::int as date_key,
        started_at,
        case when not is_discharge_before_admission then ended_at end as ended_at,
        case
            when encounter_type = 'IP' and not is_discharge_before_admission
                then ended_at::date - started_at::date
        end as length_of_stay_days,
        amount,
        status,
        visit_type,
        {{ age_band(age_in_years('birth_date', 'started_at::date')) }} as patient_age_band,
        patient_key is null as has_unknown_patient,
        known_doctor_id is null as has_unknown_doctor,
        known_dept_code is null as has_unknown_department,
        is_amount_negative,
        is_discharge_before_admission,
        duplicates_collapsed,
        data_source
    from joined
)

select * from final
