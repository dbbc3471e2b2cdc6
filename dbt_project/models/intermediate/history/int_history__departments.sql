-- Type-2 history of each department: a new period when it is renamed, moves to another
-- division, changes type or opens or closes; see macros/type2_history.sql.
{{ type2_history(
    ref('stg_his__department_versions'),
    'dept_code',
    ['dept_name', 'parent_dept_code', 'dept_type', 'is_active'],
) }}
