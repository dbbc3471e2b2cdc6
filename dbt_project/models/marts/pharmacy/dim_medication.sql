{{ config(post_hook="{{ record_transform() }}") }}

-- One row per medication product of every institution and source (std_medication_product:
-- a local drug code, or code and name where a source reuses codes), with its WHO ATC levels
-- 1-5 and DDD, plus the unknown member '-1' that lines with an unknown drug code point at. A
-- product without an ATC code is kept (atc_mapping = 'unmapped') and listed in
-- mart_unmapped_drug_codes; atc_mapping is the standard's mapping method.
with

drugs as (
    select * from {{ ref('std_medication_product') }}
),

atc_levels as (
    select * from {{ ref('atc_levels') }}
),

coded as (
    select
        *,
        left(atc_code, 1) as atc_level1_code,
        left(atc_code, 3) as atc_level2_code,
        left(atc_code, 4) as atc_level3_code,
        left(atc_code, 5) as atc_level4_code,
        atc_code as atc_level5_code
    from drugs
),

known as (
    select
        coded.medication_product_key as medication_key,
        coded.institution_id,
        coded.source_system,
        coded.local_drug_code as drug_code,
        coalesce(coded.local_drug_name, coded.local_drug_code) as generic_name,
        coded.brand_name,
        coded.specification,
        coded.dosage_form,
        coded.unit,
        coded.pack_size,
        coded.strength_mg,
        coded.strength_check,
        coded.route,
        coded.manufacturer,
        coded.atc_code,
        coded.atc_level1_code,
        level1.atc_name as atc_level1_name,
        coded.atc_level2_code,
        level2.atc_name as atc_level2_name,
        coded.atc_level3_code,
        level3.atc_name as atc_level3_name,
        coded.atc_level4_code,
        level4.atc_name as atc_level4_name,
        coded.atc_level5_code,
        level5.atc_name as atc_level5_name,
        coded.atc_mapping_method as atc_mapping,
        coded.atc_code_system,
        coded.ddd_value,
        coded.ddd_unit,
        coalesce(coded.is_essential, false) as is_essential,
        coded.antibiotic_grade,
        coalesce(coded.atc_code like 'J01%', false) as is_systemic_antibacterial,
        coded.supplier_code,
        coded.current_unit_price,
        coded.is_active,
        false as is_unknown_member,
        coded.data_source
    from coded
    left join atc_levels as level1 on coded.atc_level1_code = level1.atc_code
    left join atc_levels as level2 on coded.atc_level2_code = level2.atc_code
    left join atc_levels as level3 on coded.atc_level3_code = level3.atc_code
    left join atc_levels as level4 on coded.atc_level4_code = level4.atc_code
    left join atc_levels as level5 on coded.atc_level5_code = level5.atc_code
),

unknown_member as (
    select
        '-1' as medication_key,
        null::text as institution_id,
        null::text as source_system,
        null::text as drug_code,
        'unknown' as generic_name,
        null::text as brand_name,
        null::text as specification,
        null::text as dosage_form,
        null::text as unit,
        null::int as pack_size,
        null::numeric as strength_mg,
        'not_checkable' as strength_check,
        null::text as route,
        null::text as manufacturer,
        null::text as atc_code,
        null::text as atc_level1_code,
        null::text as atc_level1_name,
        null::text as atc_level2_code,
        null::text as atc_level2_name,
        null::text as atc_level3_code,
        null::text as atc_level3_name,
        null::text as atc_level4_code,
        null::text as atc_level4_name,
        null::text as atc_level5_code,
        null::text as atc_level5_name,
        'unmapped' as atc_mapping,
        null::text as atc_code_system,
        null::numeric as ddd_value,
        null::text as ddd_unit,
        false as is_essential,
        null::text as antibiotic_grade,
        false as is_systemic_antibacterial,
        null::text as supplier_code,
        null::numeric as current_unit_price,
        false as is_active,
        true as is_unknown_member,
        null::text as data_source
)

select * from known
union all
select * from unknown_member
