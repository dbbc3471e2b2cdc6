{{ config(
    materialized='incremental',
    unique_key='encounter_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "{{ delete_vanished_rows('encounter_key', ref('int_encounters__unioned')) }}",
        "{{ enable_department_rls() }}",
        "{{ record_transform() }}",
    ],
) }}

-- depends_on: {{ ref('int_his__outpatient_visits_resolved') }}
-- One row per encounter: an outpatient visit (duplicates collapsed) or an inpatient admission.
-- No row is dropped for a broken reference: it points at the dimension's unknown member and
-- says so in a has_unknown_* flag. The *_version_key columns name the doctor, department and
-- patient as they were when the encounter started (type-2 dimensions *_history).
-- Incremental (macros/incremental.sql): a run rebuilds the encounters whose visit or admission
-- was published since the last build, the visits collapsed with them, the encounters of
-- persons whose registrations changed, those the patient index now gives another key, and
-- those whose dimension version no longer covers their start; a visit that became a re-sent
-- copy is deleted (post-hook). The same rows as a full refresh (tests/test_history.py).
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

-- the HIS's doctors and departments in the standard, by the ids the HIS's encounters name
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

doctor_history as (
    select * from {{ ref('int_history__doctors') }}
),

department_history as (
    select * from {{ ref('int_history__departments') }}
),

patient_history as (
    select * from {{ ref('dim_patient_history') }}
),

{% if is_incremental() -%}

    -- Each branch reads tables, not the CTEs above (a CTE read twice is materialised and
    -- leaves the planner without statistics), and each is one join or anti-join: a NOT EXISTS
    -- under OR runs once per fact row.
    changed as (
        -- a visit or admission published since the last build: the encounter it survives as
        select 'OP-' || resolved.surviving_visit_id::text as encounter_key
        from {{ ref('int_his__outpatient_visits_resolved') }} as resolved
        where resolved.visit_id in (
                {{ keys_published_since('raw_his', 'outpatient_visits', reprocess_since()) }}
            )
        union
        select 'IP-' || admissions.changed_key::text as encounter_key
        from (
            {{ keys_published_since('raw_his', 'inpatient_admissions', reprocess_since()) }}
        ) as admissions
        union
        -- a person whose registrations changed (birth date, sex, address, new duplicate)
        select unioned.encounter_key
        from {{ ref('int_encounters__unioned') }} as unioned
        where unioned.patient_id in (
                select person_map.patient_id
                from {{ ref('int_his__patient_key_map') }} as person_map
                where person_map.patient_key in (
                        select changed_map.patient_key
                        from {{ ref('int_his__patient_key_map') }} as changed_map
                        where changed_map.patient_id in (
                                {{ keys_published_since('raw_his', 'patients', reprocess_since()) }}
                            )
                    )
            )
        union
        -- new, newly surviving, re-keyed by the patient index, or collapsed with another count
        select unioned.encounter_key
        from {{ ref('int_encounters__unioned') }} as unioned
        left join {{ ref('int_his__patient_key_map') }} as current_map
            on unioned.patient_id = current_map.patient_id
        left join {{ this }} as previous on unioned.encounter_key = previous.encounter_key
        where
            previous.encounter_key is null
            or previous.patient_key is distinct from coalesce(current_map.patient_key, '-1')
            or previous.duplicates_collapsed is distinct from unioned.duplicates_collapsed
        union
        -- a dimension version that no longer covers the encounter (a late change of a doctor,
        -- department or person splits the period it fell in)
        select previous.encounter_key
        from {{ this }} as previous
        where
            previous.doctor_version_key <> '-1'
            and not exists (
                select 1 from {{ ref('int_history__doctors') }} as period
                where
                    period.version_key = previous.doctor_version_key
                    and previous.started_at >= period.valid_from
                    and previous.started_at < period.valid_to
            )
        union
        select previous.encounter_key
        from {{ this }} as previous
        where
            previous.department_version_key <> '-1'
            and not exists (
                select 1 from {{ ref('int_history__departments') }} as period
                where
                    period.version_key = previous.department_version_key
                    and previous.started_at >= period.valid_from
                    and previous.started_at < period.valid_to
            )
        union
        select previous.encounter_key
        from {{ this }} as previous
        where not exists (
                select 1 from {{ ref('dim_patient_history') }} as period
                where
                    period.patient_version_key = previous.patient_version_key
                    and previous.started_at >= period.valid_from
                    and previous.started_at < period.valid_to
            )
        union
        -- a doctor or department with a version published since the last build
        select unioned.encounter_key
        from {{ ref('int_encounters__unioned') }} as unioned
        where unioned.doctor_id in (
                {{ keys_published_since('raw_his', 'doctors', reprocess_since()) }}
            )
        union
        select unioned.encounter_key
        from {{ ref('int_encounters__unioned') }} as unioned
        where unioned.dept_code in (
                select {{ normalize_code('departments_changed.changed_key') }}
                from (
                    {{ keys_published_since('raw_his', 'departments', reprocess_since()) }}
                ) as departments_changed
            )
    ),

{% endif -%}

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
    {% if is_incremental() -%}
        where encounters.encounter_key in (select changed.encounter_key from changed)
    {%- endif %}
),

versioned as (
    select
        joined.*,
        doctor_history.version_key as doctor_version_key,
        department_history.version_key as department_version_key,
        patient_history.patient_version_key
    from joined
    left join doctor_history
        on
            joined.known_doctor_id = doctor_history.doctor_id
            and joined.started_at >= doctor_history.valid_from
            and joined.started_at < doctor_history.valid_to
    left join department_history
        on
            joined.known_dept_code = department_history.dept_code
            and joined.started_at >= department_history.valid_from
            and joined.started_at < department_history.valid_to
    left join patient_history
        on
            coalesce(joined.patient_key, '-1') = patient_history.patient_key
            and joined.started_at >= patient_history.valid_from
            and joined.started_at < patient_history.valid_to
),

final as (
    select
        encounter_key,
        institution_id,
        standard_encounter_key,
        encounter_type,
        encounter_class,
        coalesce(patient_key, '-1') as patient_key,
        coalesce(known_doctor_id, -1) as doctor_key,
        coalesce(known_dept_code, '-1') as department_key,
        coalesce(patient_version_key, '-1') as patient_version_key,
        coalesce(doctor_version_key, '-1') as doctor_version_key,
        coalesce(department_version_key, '-1') as department_version_key,
        to_char(started_at, 'YYYYMMDD')::int as date_key,
        started_at,
        case when not is_discharge_before_admission then ended_at end as ended_at,
        case
            when encounter_type = 'IP' and not is_discharge_before_admission
                then ended_at::date - started_at::date
        end as length_of_stay_days,
        -- typed as the contract says: the incremental run compares its rows' types with the table's
        amount::numeric(12, 2) as amount,
        status,
        visit_type,
        {{ age_band(age_in_years('birth_date', 'started_at::date')) }} as patient_age_band,
        patient_key is null as has_unknown_patient,
        known_doctor_id is null as has_unknown_doctor,
        known_dept_code is null as has_unknown_department,
        is_amount_negative,
        is_discharge_before_admission,
        duplicates_collapsed,
        data_source,
        now() as transformed_at
    from versioned
)

select * from final
