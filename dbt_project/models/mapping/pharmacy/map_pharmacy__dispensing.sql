-- Dispensing events (发药/退药) as std_dispensing: sales positive, returns (退药) negative in
-- quantity and amount, as the source records them. Re-sent copies were collapsed in staging.
with

dispensing as (
    select * from {{ ref('stg_pharmacy__dispensing') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        dispensing.dispense_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || dispensing.dispense_id::text
            as dispensing_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || dispensing.line_id::text
            as medication_order_line_key,
        dispensing.line_id::text as line_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || dispensing.drug_code
            as medication_product_key,
        dispensing.drug_code as local_drug_code,
        -- a sales export without a catalogue names the drug on the row; this one does not
        null::text as local_drug_name,
        dispensing.batch_no,
        dispensing.quantity,
        dispensing.unit_price_recorded,
        dispensing.amount_recorded,
        dispensing.is_return,
        dispensing.returned_dispense_id::text as returned_source_record_id,
        dispensing.pharmacy_code,
        dispensing.dept_code as local_department_code,
        dispensing.dispensed_at,
        dispensing.duplicates_collapsed,
        dispensing.data_source
    from dispensing
    cross join source_system
)

select * from final
