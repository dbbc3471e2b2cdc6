-- Hospital A's drug catalogue (药品字典) as std_medication_product: one product per local drug
-- code (the catalogue never reuses a code, so the code alone is the record id). The catalogue
-- carries the WHO ATC code and DDD itself (atc_mapping_method 'exact'); a code it leaves
-- without one is looked up in the source's mapping table, seeds/mapping/pharmacy/
-- pharmacy_drug_codes.csv, by code (and by name when the row names one), which records how
-- each row was mapped; what neither maps stays 'unmapped' and reaches the worklist.
with

drugs as (
    select * from {{ ref('stg_pharmacy__drugs') }}
),

drug_codes as (
    select * from {{ ref('pharmacy_drug_codes') }}
),

source_system as (
    select * from {{ ref('map_pharmacy__source_system') }}
),

looked_up as (
    -- a table row naming a drug wins over one for the code alone
    select distinct on (drugs.drug_code)
        drugs.*,
        drug_codes.atc_code as table_atc_code,
        drug_codes.ddd_value as table_ddd_value,
        drug_codes.ddd_unit as table_ddd_unit,
        drug_codes.mapping_method as table_mapping_method
    from drugs
    left join drug_codes
        on
            drugs.drug_code = drug_codes.local_drug_code
            and (drug_codes.local_drug_name is null or drugs.generic_name = drug_codes.local_drug_name)
    order by drugs.drug_code asc, drug_codes.local_drug_name asc nulls last
),

mapped as (
    select
        *,
        case
            when atc_code is not null then 'exact'
            when table_atc_code is not null then table_mapping_method
            else 'unmapped'
        end as atc_mapping_method
    from looked_up
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        mapped.drug_code as source_record_id,
        source_system.institution_id || ':' || source_system.source_system || ':' || mapped.drug_code
            as medication_product_key,
        mapped.drug_code as local_drug_code,
        mapped.generic_name as local_drug_name,
        mapped.brand_name,
        mapped.specification,
        mapped.dosage_form,
        mapped.unit,
        mapped.pack_size::int as pack_size,
        mapped.strength_mg,
        mapped.strength_mg_recorded,
        mapped.strength_check,
        mapped.route,
        mapped.manufacturer,
        coalesce(mapped.atc_code, mapped.table_atc_code) as atc_code,
        'WHO ATC/DDD Index 2024' as atc_code_system,
        mapped.atc_mapping_method,
        case when mapped.atc_code is not null then mapped.ddd_value else mapped.table_ddd_value end
            as ddd_value,
        case when mapped.atc_code is not null then mapped.ddd_unit else mapped.table_ddd_unit end
            as ddd_unit,
        mapped.is_essential,
        mapped.antibiotic_grade,
        mapped.supplier_code,
        mapped.current_unit_price,
        mapped.is_active,
        mapped.data_source
    from mapped
    cross join source_system
)

select * from final
