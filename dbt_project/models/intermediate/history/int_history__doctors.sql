-- Type-2 history of each doctor: a new period when the doctor moves department or changes
-- title (a promotion); see macros/type2_history.sql.
{{ type2_history(ref('stg_his__doctor_versions'), 'doctor_id', ['dept_code', 'title']) }}
