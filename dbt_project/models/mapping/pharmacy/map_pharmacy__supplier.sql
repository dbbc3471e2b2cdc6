-- The pharmacy's suppliers (供应商), with the lead time they promise.
with

suppliers as (
    select * from {{ ref('stg_pharmacy__suppliers') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        suppliers.supplier_code as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || suppliers.supplier_code
            as supplier_key,
        suppliers.supplier_code as local_supplier_code,
        suppliers.supplier_name,
        suppliers.nominal_lead_time_days::int as nominal_lead_time_days,
        suppliers.data_source
    from suppliers
    cross join source_system
)

select * from final
