-- Zero quantities never get here (the gate quarantines them). The unit is kept as recorded:
-- whether a '盒' is a mix-up can only be told against the drug (int_pharmacy__prescription_lines).
with

source as (
    {{ published_rows('raw_pharmacy', 'prescription_lines') }}
),

latest as (
    {{ latest_version('source', 'line_id', 'updated_at') }}
),

renamed as (
    select
        line_id,
        prescription_id,
        line_no,
        {{ normalize_code('drug_code') }} as drug_code,
        dose_per_time,
        trim(dose_unit) as dose_unit,
        lower(trim(frequency)) as frequency,
        days as days_supplied,
        quantity,
        trim(unit) as unit_recorded,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from latest
)

select * from renamed
