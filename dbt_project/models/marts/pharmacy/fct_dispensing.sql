{#- on_schema_change: a table built before row_hash existed gets the new columns, and every
    row is rewritten once (no full refresh needed) -#}
{{ config(
    materialized='incremental',
    unique_key='dispensing_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=[
        "{{ delete_vanished_rows('dispensing_key', ref('int_pharmacy__dispensing')) }}",
        "{{ enable_department_rls() }}",
        "{{ record_transform() }}",
    ],
) }}

-- One row per dispensing event of every institution and source (dispensing_key =
-- std_dispensing's key): sales (positive quantity) and returns (退药: negative
-- quantity, amount and DDDs, is_return), so sums are net. Re-sent copies are collapsed
-- (duplicates_collapsed) and prices typed 100x too high are corrected (is_price_100x).
-- Incremental by row hash (macros/incremental.sql): a run writes only the dispensings that are
-- new or whose values changed (a return, a corrected price, a new patient key); a dispensing
-- gone from the input is deleted (post-hook).
with

dispensing as (
    select * from {{ ref('int_pharmacy__dispensing') }}
),

medication_history as (
    select * from {{ ref('dim_medication_history') }}
),

versioned as (
    -- the drug's catalogue entry (list price, formulary status) when the line was dispensed
    select
        dispensing.*,
        coalesce(medication_history.medication_version_key, '-1') as medication_version_key
    from dispensing
    left join medication_history
        on
            dispensing.medication_key = medication_history.medication_key
            and dispensing.dispensed_at >= medication_history.valid_from
            and dispensing.dispensed_at < medication_history.valid_to
),

final as (
    select
        dispensing_key,
        institution_id,
        source_system,
        dispense_id,
        line_id,
        encounter_type,
        encounter_key,
        patient_key,
        department_key,
        medication_key,
        medication_version_key,
        to_char(dispensed_at, 'YYYYMMDD')::int as date_key,
        dispensed_at,
        pharmacy_code,
        batch_no,
        drug_code_recorded,
        quantity,
        unit_price,
        amount,
        ddd,
        is_return,
        returned_dispense_id,
        unit_price_recorded,
        list_unit_price,
        price_check,
        is_price_100x,
        duplicates_collapsed,
        has_unknown_drug,
        has_unknown_department,
        has_unknown_line,
        data_source
    from versioned
),

hashed as (
    {{ with_row_hash('final') }}
)

{% if is_incremental() -%}
    {{ only_changed_rows('hashed', 'dispensing_key') }}
{%- else -%}
    select * from hashed
{%- endif %}
