with

source as (
    {{ published_rows('raw_hisb', 'ysxx') }}
),

versioned as (
    select
        *,
        gxsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'ysdm', 'gxsj') }}
),

renamed as (
    select
        {{ normalize_code('ysdm') }} as doctor_code,
        trim(ysxm) as doctor_name,
        {{ normalize_code('ksdm') }} as dept_code,
        trim(zc) as title,
        {{ normalize_sex('xb') }} as sex,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
