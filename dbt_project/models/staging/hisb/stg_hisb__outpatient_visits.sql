-- ghsj is text in three formats ('2024-01-02 08:30:05', '2024/1/2 8:30', '20240102083005');
-- a value no format reads keeps its row, with visit_at null and visit_at_status 'unparseable'.
with

source as (
    {{ published_rows('raw_hisb', 'mzgh') }}
),

versioned as (
    select
        *,
        czsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'ghxh', 'czsj') }}
),

renamed as (
    select
        ghxh as visit_id,
        brid as patient_id,
        {{ normalize_code('ksdm') }} as dept_code,
        {{ normalize_code('ysdm') }} as doctor_code,
        {{ parse_cn_timestamp('ghsj') }} as visit_at,
        nullif(trim(ghsj), '') is null as is_visit_at_missing,
        trim(ghlb) as visit_type,
        case when ghf >= 0 then ghf end as fee,
        coalesce(ghf < 0, false) as is_fee_negative,
        case when trim(thbz) = '1' then 'cancelled' else 'completed' end as status,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
    offset 0
),

final as (
    select
        visit_id,
        patient_id,
        dept_code,
        doctor_code,
        visit_at,
        case
            when is_visit_at_missing then 'missing'
            when visit_at is null then 'unparseable'
            else 'valid'
        end as visit_at_status,
        visit_type,
        fee,
        is_fee_negative,
        status,
        updated_at,
        data_source,
        _extracted_at,
        _batch_id
    from renamed
)

select * from final
