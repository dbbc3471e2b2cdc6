-- One row per local drug code. strength_mg is checked against the WHO DDD: in the catalogue
-- one dispensing unit holds between 1/6 and 25 DDDs, so a unit that holds less than
-- 1/20 of a DDD, and a plausible amount once read as grams, was typed in grams (250 mg
-- stored as 0.25): it is multiplied by 1000 and flagged. Drugs without a DDD in mass units
-- (UD, none) cannot be checked and say so.
with

source as (
    {{ published_rows('raw_pharmacy', 'drugs') }}
),

latest as (
    {{ latest_version('source', 'drug_code', 'updated_at') }}
),

typed as (
    select
        *,
        case lower(trim(ddd_unit))
            when 'g' then ddd_value * 1000
            when 'mg' then ddd_value
            when 'mcg' then ddd_value / 1000
        end as ddd_mg
    from latest
),

checked as (
    select
        *,
        case
            when strength_mg is null or ddd_mg is null or ddd_mg <= 0 then 'not_checkable'
            when
                strength_mg / ddd_mg < 0.05
                and strength_mg * 1000 / ddd_mg between 0.05 and 50
                then 'fixed_from_grams'
            else 'plausible'
        end as strength_check
    from typed
),

renamed as (
    select
        {{ normalize_code('drug_code') }} as drug_code,
        drug_id,
        trim(generic_name) as generic_name,
        nullif(trim(brand_name), '') as brand_name,
        trim(specification) as specification,
        trim(dosage_form) as dosage_form,
        trim(unit) as unit,
        pack_size,
        case
            when strength_check = 'fixed_from_grams' then strength_mg * 1000
            else strength_mg
        end as strength_mg,
        strength_mg as strength_mg_recorded,
        strength_check,
        strength_check = 'fixed_from_grams' as is_strength_in_grams,
        trim(route) as route,
        trim(manufacturer) as manufacturer,
        {{ normalize_code('atc_code') }} as atc_code,
        ddd_value,
        case lower(trim(ddd_unit))
            when 'ud' then 'UD'
            else lower(trim(ddd_unit))
        end as ddd_unit,
        ddd_mg,
        is_essential,
        nullif(trim(antibiotic_grade), '') as antibiotic_grade,
        {{ normalize_code('supplier_code') }} as supplier_code,
        unit_price as current_unit_price,
        is_active,
        created_at,
        updated_at,
        _source as data_source,
        _extracted_at,
        _batch_id
    from checked
)

select * from renamed
