-- Type-2 history of each HIS department: a new period when it is renamed, moves to another
-- division, changes type or opens or closes; see macros/type2_history.sql. From the standard's
-- versions (std_organisation_unit_version), by the HIS's dept_code the star is keyed on.
with

versions as (
    select
        local_unit_code as dept_code,
        unit_name as dept_name,
        local_parent_unit_code as parent_dept_code,
        unit_type as dept_type,
        is_active,
        updated_at
    from {{ ref('std_organisation_unit_version') }}
    where source_system = 'his'
),

history as (
    {{ type2_history(
        'versions',
        'dept_code',
        ['dept_name', 'parent_dept_code', 'dept_type', 'is_active'],
    ) }}
)

select * from history
