-- Every type-2 dimension's periods tile time for each key: the first starts 1900-01-01, each
-- ends where the next starts, the last (and only the last) is current and ends 9999-12-31.
-- Rows returned are keys whose periods overlap, leave a gap or are numbered out of order.
with

periods as (
    select 'doctor' as dimension, doctor_key::text as durable_key, version_number, valid_from,
        valid_to, is_current
    from {{ ref('dim_doctor_history') }}
    union all
    select 'department', department_key, version_number, valid_from, valid_to, is_current
    from {{ ref('dim_department_history') }}
    union all
    select 'medication', medication_key, version_number, valid_from, valid_to, is_current
    from {{ ref('dim_medication_history') }}
    union all
    select 'patient', patient_key, version_number, valid_from, valid_to, is_current
    from {{ ref('dim_patient_history') }}
),

ordered as (
    select
        *,
        lag(valid_to) over (partition by dimension, durable_key order by valid_from)
            as previous_valid_to,
        row_number() over (partition by dimension, durable_key order by valid_from)
            as position,
        lead(valid_from) over (partition by dimension, durable_key order by valid_from)
            as next_valid_from
    from periods
)

select *
from ordered
where
    valid_from >= valid_to
    or position <> version_number
    or (position = 1 and valid_from <> timestamp '1900-01-01')
    or (position > 1 and valid_from <> previous_valid_to)
    or (next_valid_from is null) <> is_current
    or (next_valid_from is null and valid_to <> timestamp '9999-12-31')
