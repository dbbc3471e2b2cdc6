-- Every published version of each department (dept_code, updated_at): the input of the
-- departments' type-2 history (renamed departments, opened or closed ones).
with

source as (
    {{ published_rows('raw_his', 'departments') }}
),

versions as (
    {{ every_version('source', 'dept_code') }}
),

renamed as (
    select
        {{ normalize_code('dept_code') }} as dept_code,
        trim(dept_name) as dept_name,
        {{ normalize_code('parent_code') }} as parent_dept_code,
        lower(trim(dept_type)) as dept_type,
        is_active,
        updated_at,
        _batch_id
    from versions
)

select * from renamed
