-- The drug catalogue has names and specifications only: no ATC code, no strength column.
with

source as (
    {{ published_rows('raw_hisb', 'ypzd') }}
),

versioned as (
    select
        *,
        gxsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'ypdm', 'gxsj') }}
),

renamed as (
    select
        {{ normalize_code('ypdm') }} as drug_code,
        trim(ypmc) as drug_name,
        trim(gg) as specification,
        trim(dw) as unit,
        dj as unit_price,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
