with

source as (
    {{ published_rows('raw_hisb', 'ksdm') }}
),

versioned as (
    select
        *,
        gxsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'ksdm', 'gxsj') }}
),

renamed as (
    select
        {{ normalize_code('ksdm') }} as dept_code,
        trim(ksmc) as dept_name,
        trim(kslb) as dept_category,
        -- zfbz is tinyint(1) at the source (MariaDB): boolean in raw_hisb
        coalesce(not zfbz, true) as is_active,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
