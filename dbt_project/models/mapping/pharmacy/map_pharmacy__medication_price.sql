-- The catalogue's price periods (drug_prices): the list price a dispensing is checked against.
with

prices as (
    select * from {{ ref('stg_pharmacy__drug_prices') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        prices.price_id::text as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || prices.price_id::text
            as medication_price_key,
        source_system.institution_id || ':' || source_system.source_system || ':' || prices.drug_code
            as medication_product_key,
        prices.drug_code as local_drug_code,
        prices.valid_from,
        prices.valid_to,
        prices.unit_price,
        prices.price_change_reason,
        prices.data_source
    from prices
    cross join source_system
)

select * from final
