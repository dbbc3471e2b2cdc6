{{ config(post_hook="{{ record_transform() }}") }}

-- Type-2 drug dimension: one row per period in which a medication product kept its list price,
-- supplier, antibiotic grade, essential-list and formulary status (valid_from <= t <
-- valid_to), plus the unknown member '-1'. A product without versions holds one period.
-- medication_key (= dim_medication) is the durable key.
with

history as (
    select * from {{ ref('int_history__drugs') }}
),

products as (
    select * from {{ ref('std_medication_product') }}
),

known as (
    select
        version_key as medication_version_key,
        medication_product_key as medication_key,
        list_unit_price,
        supplier_code,
        antibiotic_grade,
        is_essential,
        is_active,
        version_number,
        valid_from,
        valid_to,
        is_current,
        false as is_unknown_member
    from history
),

without_versions as (
    -- a source without a catalogue (a sales export) has no versions: its product holds one
    -- period for all time, so its facts find their version like every other's
    select
        {{ version_key('products.medication_product_key', "timestamp '1900-01-01'") }}
            as medication_version_key,
        products.medication_product_key as medication_key,
        products.current_unit_price as list_unit_price,
        products.supplier_code,
        products.antibiotic_grade,
        coalesce(products.is_essential, false) as is_essential,
        coalesce(products.is_active, true) as is_active,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current,
        false as is_unknown_member
    from products
    where
        not exists (
            select 1 from history
            where history.medication_product_key = products.medication_product_key
        )
),

unknown_member as (
    select
        '-1' as medication_version_key,
        '-1' as medication_key,
        null::numeric as list_unit_price,
        null::text as supplier_code,
        null::text as antibiotic_grade,
        false as is_essential,
        false as is_active,
        1 as version_number,
        timestamp '1900-01-01' as valid_from,
        timestamp '9999-12-31' as valid_to,
        true as is_current,
        true as is_unknown_member
)

select * from known
union all
select * from without_versions
union all
select * from unknown_member
