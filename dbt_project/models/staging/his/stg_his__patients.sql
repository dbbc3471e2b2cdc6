-- Direct identifiers stop here: phone and address are not passed on at all (no model needs
-- them); name, id_card_no and mrn are passed on normalised for person matching only.
with

source as (
    {{ published_rows('raw_his', 'patients') }}
),

latest as (
    {{ latest_version('source', 'patient_id', 'updated_at') }}
),

cleaned as (
    select
        patient_id,
        trim(mrn) as mrn,
        {{ normalize_name('name') }} as patient_name,
        {{ normalize_sex('gender') }} as sex,
        {{ parse_cn_date('birth_date') }} as birth_date_parsed,
        nullif(trim(birth_date), '') is null as is_birth_date_missing,
        {{ normalize_cn_id_card('id_card_no') }} as id_card_no,
        registered_at,
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
            -- born after registering (a century typo: 2085 for 1985) or after today
            when birth_date_parsed > least(registered_at::date, current_date) then 'future'
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
        id_card_no,
        is_id_card_valid,
        registered_at,
        updated_at,
        data_source,
        _extracted_at,
        _batch_id
    from flagged
)

select * from final
