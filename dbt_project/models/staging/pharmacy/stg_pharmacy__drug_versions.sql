-- Every published version of each drug code (drug_code, updated_at): the input of the drug
-- catalogue's type-2 history (price changes 调价/集采, supplier, formulary status).
with

source as (
    {{ published_rows('raw_pharmacy', 'drugs') }}
),

versions as (
    {{ every_version('source', 'drug_code') }}
),

renamed as (
    select
        {{ normalize_code('drug_code') }} as drug_code,
        unit_price as list_unit_price,
        {{ normalize_code('supplier_code') }} as supplier_code,
        nullif(trim(antibiotic_grade), '') as antibiotic_grade,
        is_essential,
        is_active,
        updated_at,
        _batch_id
    from versions
)

select * from renamed
