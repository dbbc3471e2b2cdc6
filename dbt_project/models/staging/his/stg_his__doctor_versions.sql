-- Every published version of each doctor (doctor_id, updated_at): the input of the doctors'
-- type-2 history. Only what history tracks; names stay in stg_his__doctors.
with

source as (
    {{ published_rows('raw_his', 'doctors') }}
),

versions as (
    {{ every_version('source', 'doctor_id') }}
),

renamed as (
    select
        doctor_id,
        {{ normalize_code('dept_code') }} as dept_code,
        trim(title) as title,
        updated_at,
        _batch_id
    from versions
)

select * from renamed
