-- Hospital B's drug catalogue (ypzd: local code, name, specification; no ATC) as standard
-- medication products. ATC and DDD come from the pharmacist's table
-- (seeds/mapping/hisb/hisb_drug_atc_map.csv, mapping_method manual) when it lists the code
-- under the same name; any other entry stays 'unmapped' and reaches the unmapped-codes worklist.
-- Hospital B dispenses by the 盒 or 支: strength_mg is the substance in one such unit.
with

source_system as (
    select * from {{ ref('map_hisb__source_system') }}
),

drugs as (
    select * from {{ ref('stg_hisb__drugs') }}
),

atc_map as (
    select * from {{ ref('hisb_drug_atc_map') }}
),

mapped as (
    select
        drugs.*,
        atc_map.atc_code,
        atc_map.ddd_value,
        atc_map.ddd_unit,
        atc_map.strength_mg_per_unit,
        coalesce(atc_map.mapping_method, 'unmapped') as atc_mapping_method
    from drugs
    -- a code re-used for another product (another name) is not the mapped one
    left join atc_map
        on
            drugs.drug_code = atc_map.drug_code
            and drugs.drug_name = atc_map.drug_name
),

final as (
    select
        source_system.institution_id,
        source_system.source_system,
        mapped.drug_code as source_record_id,
        {{ standard_key('mapped.drug_code') }} as medication_product_key,
        mapped.drug_code as local_drug_code,
        mapped.drug_name as local_drug_name,
        null::text as brand_name,
        mapped.specification,
        null::text as dosage_form,
        mapped.unit,
        1 as pack_size,
        mapped.strength_mg_per_unit as strength_mg,
        null::numeric as strength_mg_recorded,
        case when mapped.strength_mg_per_unit is null then 'not_checkable' else 'plausible' end
            as strength_check,
        null::text as route,
        null::text as manufacturer,
        mapped.atc_code,
        'WHO ATC/DDD Index 2024' as atc_code_system,
        mapped.atc_mapping_method,
        mapped.ddd_value,
        mapped.ddd_unit,
        null::boolean as is_essential,
        null::text as antibiotic_grade,
        null::text as supplier_code,
        mapped.unit_price as current_unit_price,
        true as is_active,
        mapped.data_source
    from mapped
    cross join source_system
)

select * from final
