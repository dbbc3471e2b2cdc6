with

source as (
    {{ published_rows('raw_his', 'departments') }}
),

latest as (
    {{ latest_version('source', 'dept_code', 'updated_at') }}
),

renamed as (
    select
        {{ normalize_code('dept_code') }} as dept_code,
        trim(dept_name) as dept_name,
        {{ normalize_code('parent_code') }} as parent_dept_code,
        lower(trim(dept_type)) as dept_type,
        is_active,
        created_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
