{#- on_schema_change: a table built before row_hash existed gets the new columns, and every
    row is rewritten once (no full refresh needed) -#}
{{ config(
    materialized='incremental',
    unique_key='prescription_line_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=[
        "{{ delete_vanished_rows('prescription_line_key', ref('int_pharmacy__prescription_lines'), 'medication_order_line_key') }}",
        "{{ enable_department_rls() }}",
        "{{ record_transform() }}",
    ],
) }}

-- One row per prescription line of every institution and source (prescription_line_key =
-- std_medication_order_line's key), keyed like fct_encounter (patient_key, doctor_key,
-- department_key, encounter_key), with its DDDs. Broken references point at unknown members
-- and say so in has_unknown_* flags; unit mix-ups are corrected and flagged.
-- Incremental by row hash (macros/incremental.sql): a run writes only the lines that are new
-- or whose values changed (a shortened line, a new patient key); a line gone from the input is
-- deleted (post-hook).
with

lines as (
    select * from {{ ref('int_pharmacy__prescription_lines') }}
),

medication_history as (
    select * from {{ ref('dim_medication_history') }}
),

versioned as (
    -- the drug's catalogue entry (list price, formulary status) when the line was written
    select
        lines.*,
        coalesce(medication_history.medication_version_key, '-1') as medication_version_key
    from lines
    left join medication_history
        on
            lines.medication_key = medication_history.medication_key
            and lines.prescribed_at >= medication_history.valid_from
            and lines.prescribed_at < medication_history.valid_to
),

final as (
    select
        medication_order_line_key as prescription_line_key,
        institution_id,
        source_system,
        line_id,
        prescription_id,
        line_no,
        encounter_type,
        encounter_key,
        patient_key,
        doctor_key,
        department_key,
        medication_key,
        medication_version_key,
        coalesce(to_char(prescribed_at, 'YYYYMMDD')::int, -1) as date_key,
        prescribed_at,
        prescription_type,
        drug_code_recorded,
        dose_per_time,
        dose_unit,
        frequency,
        days_supplied,
        quantity,
        unit,
        unit_recorded,
        ddd,
        is_systemic_antibacterial,
        is_unit_mixup,
        has_unknown_drug,
        has_unknown_patient,
        has_unknown_doctor,
        has_unknown_department,
        has_unknown_encounter,
        has_unknown_prescription,
        data_source
    from versioned
),

hashed as (
    {{ with_row_hash('final') }}
)

{% if is_incremental() -%}
    {{ only_changed_rows('hashed', 'prescription_line_key') }}
{%- else -%}
    select * from hashed
{%- endif %}
