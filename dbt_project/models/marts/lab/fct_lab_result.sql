{#- on_schema_change: a table built before row_hash existed gets the new columns, and every
    row is rewritten once (no full refresh needed) -#}
{{ config(
    materialized='incremental',
    unique_key='lab_result_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=[
        "{{ delete_vanished_rows('lab_result_key', ref('std_lab_observation'), 'lab_observation_key') }}",
        "{{ enable_department_rls() }}",
        "{{ record_transform() }}",
    ],
) }}

-- One row per laboratory result of every institution and source (std_lab_observation;
-- lab_result_key is its key, institution_id:source_system:result id). The patient is the pseudonymised patient_key (never the HIS
-- patient id); results of a collapsed duplicate visit point at the surviving visit; results
-- whose patient or encounter is unknown are kept, flagged, on the unknown patient.
-- Incremental by row hash (macros/incremental.sql): a run writes only the results that are new
-- or whose values changed; a result gone from the input is deleted (post-hook).
with

results as (
    select * from {{ ref('std_lab_observation') }}
),

key_map as (
    select * from {{ ref('int_his__patient_key_map') }}
),

visit_resolution as (
    select * from {{ ref('int_his__outpatient_visits_resolved') }}
),

encounters as (
    select * from {{ ref('fct_encounter') }}
),

keyed as (
    select
        results.*,
        key_map.patient_key,
        case
            when results.encounter_type = 'OP' and results.visit_id is not null
                then 'OP-' || coalesce(visit_resolution.surviving_visit_id::text, results.visit_id)
            when results.encounter_type = 'IP' and results.admission_id is not null
                then 'IP-' || results.admission_id
        end as named_encounter_key
    from results
    -- the key map is the HIS's (one institution today): the person key's last part is its id
    left join key_map on split_part(results.person_key, ':', 3) = key_map.patient_id::text
    left join visit_resolution
        on
            results.encounter_type = 'OP'
            and results.visit_id = visit_resolution.visit_id::text
),

final as (
    select
        keyed.lab_observation_key as lab_result_key,
        keyed.institution_id,
        keyed.source_system,
        keyed.source_record_id as result_id,
        keyed.order_id,
        coalesce(keyed.patient_key, '-1') as patient_key,
        encounters.encounter_key,
        keyed.encounter_type,
        -- the encounter's department: row-level security limits department analysts by it
        coalesce(encounters.department_key, '-1') as department_key,
        to_char(keyed.collected_at, 'YYYYMMDD')::int as date_key,
        keyed.local_test_code as test_code,
        keyed.local_test_name as test_name,
        keyed.specimen,
        keyed.loinc_code,
        keyed.loinc_mapping_method,
        keyed.loinc_code_system,
        keyed.is_qualitative,
        keyed.result_value,
        keyed.result_comparator,
        case when keyed.is_qualitative then keyed.result_value_text end as result_text,
        keyed.result_value_status,
        keyed.unit,
        coalesce(keyed.unit <> keyed.unit_as_delivered, false) as is_unit_normalised,
        keyed.reference_range,
        keyed.abnormal_flag,
        coalesce(keyed.abnormal_flag in ('H', 'L'), false) as is_abnormal,
        keyed.collected_at,
        keyed.reported_at,
        (extract(epoch from keyed.reported_at - keyed.collected_at) / 60)::int as turnaround_minutes,
        keyed.patient_key is null as has_unknown_patient,
        encounters.encounter_key is null as has_unknown_encounter,
        keyed.data_source
    from keyed
    left join encounters on keyed.named_encounter_key = encounters.encounter_key
),

hashed as (
    {{ with_row_hash('final') }}
)

{% if is_incremental() -%}
    {{ only_changed_rows('hashed', 'lab_result_key') }}
{%- else -%}
    select * from hashed
{%- endif %}
