{{ config(
    materialized='incremental',
    unique_key='diagnosis_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=["{{ enable_department_rls() }}", "{{ record_transform() }}"],
) }}

-- One row per diagnosis. Diagnoses of a collapsed duplicate visit move to the surviving visit;
-- those whose encounter is unknown are kept with has_unknown_encounter and the unknown patient.
-- Codes missing from the reference list are kept and flagged (is_known_code = false).
-- Incremental (macros/incremental.sql): a run rebuilds the diagnoses published since the last
-- build (a recoded diagnosis replaces its row) and those of every encounter fct_encounter
-- rebuilt since then (new key, department or surviving visit: its transformed_at).
with

-- the HIS's diagnoses in the standard, by the ids the star is keyed on
diagnoses as (
    select
        source_record_id::bigint as diagnosis_id,
        diagnosis_key as standard_diagnosis_key,
        institution_id,
        local_encounter_type as encounter_type,
        {{ standard_record_id('encounter_key', key=true) }} as encounter_id,
        icd10_code,
        diagnosis_mapping_method as icd10_mapping_method,
        is_primary,
        diagnosed_at,
        data_source
    from {{ ref('std_diagnosis') }}
    where source_system = 'his'
),

visit_resolution as (
    select * from {{ ref('int_his__outpatient_visits_resolved') }}
),

encounters as (
    select * from {{ ref('fct_encounter') }}
),

icd10_codes as (
    select * from {{ ref('icd10_codes') }}
),

{% if is_incremental() -%}

    changed as (
        select changed_key as diagnosis_id
        from (
            {{ keys_published_since('raw_his', 'diagnoses', reprocess_since()) }}
        ) as diagnoses_changed
        union
        select raw_diagnoses.diagnosis_id
        from {{ source('raw_his', 'diagnoses') }} as raw_diagnoses
        where
            upper(trim(raw_diagnoses.encounter_type)) || '-' || raw_diagnoses.encounter_id::text in (
                select rebuilt.encounter_key
                from {{ ref('fct_encounter') }} as rebuilt
                where rebuilt.transformed_at >= {{ reprocess_since() }}
            )
        union
        -- diagnoses of a visit collapsed into a rebuilt encounter
        select raw_diagnoses.diagnosis_id
        from {{ source('raw_his', 'diagnoses') }} as raw_diagnoses
        where
            upper(trim(raw_diagnoses.encounter_type)) = 'OP' and raw_diagnoses.encounter_id in (
                select resolved.visit_id
                from {{ ref('int_his__outpatient_visits_resolved') }} as resolved
                inner join {{ ref('fct_encounter') }} as rebuilt
                    on 'OP-' || resolved.surviving_visit_id::text = rebuilt.encounter_key
                where rebuilt.transformed_at >= {{ reprocess_since() }}
            )
    ),

{% endif -%}

icd10_categories as (
    select
        left(icd10_code, 3) as icd10_category,
        min(chapter) as chapter
    from icd10_codes
    group by left(icd10_code, 3)
),

keyed as (
    select
        diagnoses.*,
        diagnoses.encounter_type
        || '-'
        || coalesce(visit_resolution.surviving_visit_id, diagnoses.encounter_id)::text
            as encounter_key,
        left(diagnoses.icd10_code, 3) as icd10_category
    from diagnoses
    left join visit_resolution
        on
            diagnoses.encounter_type = 'OP'
            and diagnoses.encounter_id = visit_resolution.visit_id
    {% if is_incremental() -%}
        where diagnoses.diagnosis_id in (select changed.diagnosis_id from changed)
    {%- endif %}
),

final as (
    select
        keyed.diagnosis_id,
        keyed.institution_id,
        keyed.standard_diagnosis_key,
        keyed.encounter_key,
        keyed.encounter_type,
        coalesce(encounters.patient_key, '-1') as patient_key,
        -- the encounter's department: row-level security limits department analysts by it
        coalesce(encounters.department_key, '-1') as department_key,
        to_char(keyed.diagnosed_at, 'YYYYMMDD')::int as date_key,
        keyed.diagnosed_at,
        keyed.icd10_code,
        keyed.icd10_category,
        coalesce(icd10_codes.chapter, icd10_categories.chapter) as chapter,
        keyed.icd10_mapping_method,
        keyed.is_primary,
        icd10_codes.icd10_code is not null as is_known_code,
        encounters.encounter_key is null as has_unknown_encounter,
        keyed.data_source
    from keyed
    left join encounters on keyed.encounter_key = encounters.encounter_key
    left join icd10_codes on keyed.icd10_code = icd10_codes.icd10_code
    left join icd10_categories on keyed.icd10_category = icd10_categories.icd10_category
)

select * from final
