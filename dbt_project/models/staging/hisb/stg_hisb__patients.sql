-- Direct identifiers stop here, as in stg_his__patients: phone (lxdh) and address (dz) are not
-- passed on, nor a passport number; name, the resident card number and the card number the
-- patient carries (jzkh) are passed on normalised for person matching only.
with

source as (
    {{ published_rows('raw_hisb', 'brxx') }}
),

versioned as (
    select
        *,
        xgsj as updated_at
    from source
),

latest as (
    {{ latest_version('versioned', 'brid', 'xgsj') }}
),

cleaned as (
    select
        brid as patient_id,
        trim(jzkh) as mrn,
        {{ normalize_name('xm') }} as patient_name,
        {{ normalize_sex('xb') }} as sex,
        {{ parse_cn_date('csrq') }} as birth_date_parsed,
        nullif(trim(csrq), '') is null as is_birth_date_missing,
        case
            when trim(zjlx) = '身份证' then 'resident_card'
            when trim(zjlx) = '护照' then 'passport'
            when nullif(trim(sfzh), '') is null then 'none'
            else 'other'
        end as id_document_type,
        -- only a resident card number is one: a passport number is not compared with one
        case when trim(zjlx) = '身份证' then {{ normalize_cn_id_card('sfzh') }} end as id_card_no,
        {{ parse_cn_timestamp('djsj') }} as registered_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
    -- a fence: without it the planner copies the parsing into every reference below
    offset 0
),

flagged as (
    select
        *,
        case
            when is_birth_date_missing then 'missing'
            when birth_date_parsed is null then 'unparseable'
            when birth_date_parsed > least(coalesce(registered_at, updated_at)::date, current_date) then 'future'
            when birth_date_parsed < date '1900-01-01' then 'before_1900'
            else 'valid'
        end as birth_date_status,
        {{ is_valid_cn_id_card('id_card_no') }} as is_id_card_valid
    from cleaned
),

final as (
    select
        patient_id,
        mrn,
        patient_name,
        sex,
        case when birth_date_status = 'valid' then birth_date_parsed end as birth_date,
        birth_date_status,
        birth_date_status = 'valid' as is_birth_date_plausible,
        id_document_type,
        id_card_no,
        is_id_card_valid,
        registered_at,
        case when registered_at is null then 'unparseable' else 'valid' end as registered_at_status,
        updated_at,
        data_source,
        _extracted_at,
        _batch_id
    from flagged
)

select * from final
