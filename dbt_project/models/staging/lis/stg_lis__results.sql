-- One row per laboratory result (result_id): published rows only, the latest delivery of each
-- result (a file re-sent with other content is a newer batch; within a file, the last line),
-- the value parsed, the unit normalised and the local test code mapped to LOINC.
with

source as (
    {{ published_rows('raw_lis', 'results') }}
),

test_codes as (
    select * from {{ ref('lis_test_codes') }}
),

latest as (
    select distinct on (source.result_id) source.*
    from source
    where not coalesce(source._malformed, false)
    order by source.result_id asc, source._batch_id desc, source._line_no desc
),

cleaned as (
    select
        latest.*,
        nullif(btrim(latest.result_value), '') as value_text,
        nullif(btrim(latest.unit), '') as unit_text,
        upper(btrim(latest.test_code)) as code
    from latest
),

parsed as (
    select
        cleaned.*,
        coalesce(test_codes.is_qualitative, false) as is_qualitative,
        test_codes.loinc_code,
        cleaned.value_text ~ '^[<>]?[0-9]+(\.[0-9]+)?$' as is_value_numeric
    from cleaned
    left join test_codes on cleaned.code = test_codes.test_code
),

renamed as (
    select
        result_id,
        nullif(btrim(order_id), '') as order_id,
        case when btrim(patient_id) ~ '^[0-9]+$' then btrim(patient_id)::bigint end as patient_id,
        upper(btrim(encounter_type)) as encounter_type,
        case when btrim(visit_id) ~ '^[0-9]+$' then btrim(visit_id)::bigint end as visit_id,
        case when btrim(admission_id) ~ '^[0-9]+$' then btrim(admission_id)::bigint end as admission_id,
        code as test_code,
        nullif(btrim(test_name), '') as test_name,
        nullif(btrim(specimen), '') as specimen,
        loinc_code,
        case when loinc_code is not null then 'lis_test_codes' else 'unmapped' end as loinc_mapping_method,
        is_qualitative,
        value_text as result_value_text,
        -- '<0.01' / '>1000': the bound is the value, the comparator says which side
        case
            when not is_qualitative and is_value_numeric then ltrim(value_text, '<>')::numeric
        end as result_value,
        case
            when not is_qualitative and is_value_numeric then substring(value_text from '^[<>]')
        end as result_comparator,
        case
            when is_qualitative then 'qualitative'
            when value_text is null then 'missing'
            when is_value_numeric then 'numeric'
            else 'unparseable'
        end as result_value_status,
        -- spellings of one unit as different LIS versions export them; uIU/mL equals mIU/L
        case unit_text
            when 'mmol/l' then 'mmol/L'
            when 'MMOL/L' then 'mmol/L'
            when 'umol/L' then 'μmol/L'
            when 'umol/l' then 'μmol/L'
            when 'µmol/L' then 'μmol/L'
            when '10*9/L' then '10^9/L'
            when '×10^9/L' then '10^9/L'
            when '10*12/L' then '10^12/L'
            when '×10^12/L' then '10^12/L'
            when 'g/l' then 'g/L'
            when 'mg/l' then 'mg/L'
            when 'IU/L' then 'U/L'
            when 'u/l' then 'U/L'
            when 'ng/ml' then 'ng/mL'
            when 'pg/ml' then 'pg/mL'
            when '％' then '%'
            when 'sec' then 's'
            when 'uIU/mL' then 'mIU/L'
            when 'pmol/l' then 'pmol/L'
            else unit_text
        end as unit,
        unit_text as unit_as_delivered,
        nullif(btrim(reference_range), '') as reference_range,
        upper(nullif(btrim(abnormal_flag), '')) as abnormal_flag,
        -- a time that does not parse was quarantined by the gate (lis.results.*_parses)
        {{ parse_cn_timestamp('collected_at') }} as collected_at,
        {{ parse_cn_timestamp('reported_at') }} as reported_at,
        _source as data_source,
        _file_name as source_file_name,
        _extracted_at,
        _batch_id
    from parsed
)

select * from renamed
