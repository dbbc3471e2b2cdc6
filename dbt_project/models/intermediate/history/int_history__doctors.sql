-- Type-2 history of each HIS doctor: a new period when the doctor moves department or changes
-- title (a promotion); see macros/type2_history.sql. From the standard's versions
-- (std_practitioner_version), in the HIS's doctor_id the star is keyed on.
with

versions as (
    select
        {{ standard_record_id_text('practitioner_key') }}::int as doctor_id,
        local_unit_code as dept_code,
        title,
        updated_at
    from {{ ref('std_practitioner_version') }}
    where source_system = 'his'
),

history as (
    {{ type2_history('versions', 'doctor_id', ['dept_code', 'title']) }}
)

select * from history
