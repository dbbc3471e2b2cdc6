-- Hospital A's laboratory results as std_lab_observation. The local test code is mapped to
-- LOINC through the source's test table (seeds/mapping/lis/lis_test_codes.csv: 'via_table');
-- a code the table does not map stays 'unmapped' and keeps its local code and name.
with

results as (
    select * from {{ ref('stg_lis__results') }}
),

test_codes as (
    select * from {{ ref('lis_test_codes') }}
),

source_system as (
    select * from {{ ref('map_lis__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        results.result_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || results.result_id::text
            as lab_observation_key,
        results.order_id,
        -- the LIS's patient ids are the HIS's of the same hospital (source 'his')
        source_system.institution_id || ':his:' || results.patient_id::text as person_key,
        results.encounter_type,
        results.visit_id::text as visit_id,
        results.admission_id::text as admission_id,
        results.test_code as local_test_code,
        results.test_name as local_test_name,
        results.specimen,
        test_codes.loinc_code,
        'LOINC (version not recorded in lis_test_codes)' as loinc_code_system,
        case when test_codes.loinc_code is not null then 'via_table' else 'unmapped' end
            as loinc_mapping_method,
        results.is_qualitative,
        results.result_value_text,
        results.result_value,
        results.result_comparator,
        results.result_value_status,
        results.unit,
        results.unit_as_delivered,
        results.reference_range,
        results.abnormal_flag,
        results.collected_at,
        results.reported_at,
        results.data_source,
        results.source_file_name
    from results
    left join test_codes on results.test_code = test_codes.test_code
    cross join source_system
)

select * from final
