with

source as (
    {{ published_rows('raw_his', 'doctors') }}
),

latest as (
    {{ latest_version('source', 'doctor_id', 'updated_at') }}
),

renamed as (
    select
        doctor_id,
        -- staff data: kept here for operational use, never carried into marts
        {{ normalize_name('doctor_name') }} as doctor_name,
        {{ normalize_code('dept_code') }} as dept_code,
        trim(title) as title,
        {{ normalize_sex('gender') }} as sex,
        hired_on,
        left_on,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
