-- One row per dispensing event. The pharmacy interface re-sends rows under a new dispense_id
-- with the same content: rows equal in every column but the id and updated_at are one event;
-- the lowest dispense_id survives and duplicates_collapsed counts the others.
-- Negative sales never get here (the gate quarantines them); returns (退药) stay negative.
with

source as (
    {{ published_rows('raw_pharmacy', 'dispensing') }}
),

latest as (
    {{ latest_version('source', 'dispense_id', 'updated_at') }}
),

grouped as (
    select
        *,
        min(dispense_id) over content as surviving_dispense_id,
        count(*) over content as content_group_size
    from latest
    window content as (
        partition by
            line_id, drug_code, batch_no, quantity, unit_price, amount, is_return,
            return_of, pharmacy_code, dept_code, dispensed_at
    )
),

renamed as (
    select
        dispense_id,
        line_id,
        {{ normalize_code('drug_code') }} as drug_code,
        trim(batch_no) as batch_no,
        quantity,
        unit_price as unit_price_recorded,
        amount as amount_recorded,
        is_return,
        return_of as returned_dispense_id,
        upper(trim(pharmacy_code)) as pharmacy_code,
        {{ normalize_code('dept_code') }} as dept_code,
        dispensed_at,
        (content_group_size - 1)::int as duplicates_collapsed,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from grouped
    where dispense_id = surviving_dispense_id
)

select * from renamed
