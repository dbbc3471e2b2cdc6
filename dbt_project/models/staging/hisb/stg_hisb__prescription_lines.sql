-- kfsj (when the line was prescribed) is text in three formats; an unparseable one is flagged.
with

source as (
    {{ published_rows('raw_hisb', 'cfmx') }}
),

versioned as (
    select
        *,
        czsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'mxxh', 'czsj') }}
),

renamed as (
    select
        mxxh as line_id,
        trim(cfh) as prescription_no,
        ghxh as visit_id,
        {{ normalize_code('ypdm') }} as drug_code,
        sl as quantity,
        trim(dw) as unit,
        je as amount,
        {{ parse_cn_timestamp('kfsj') }} as prescribed_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
    offset 0
),

final as (
    select
        *,
        case when prescribed_at is null then 'unparseable' else 'valid' end as prescribed_at_status
    from renamed
)

select * from final
