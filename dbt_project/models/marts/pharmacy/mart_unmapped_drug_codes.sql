{{ config(post_hook="{{ record_transform() }}") }}

-- The mapping worklist, per institution and source, biggest volume first (map those first):
--   ambiguous:    a local code that stands for more than one product (the same code with
--                 different names or specifications, as in a sales export that reuses codes):
--                 each product is listed on its own row with its own volume, never merged;
--   unmapped:     a product without a WHO ATC code (atc_mapping 'unmapped');
--   unknown_code: a code prescribed or dispensed that the source's products do not know.
-- Volume is what the rows account for in the facts (dispensed spend, then prescription lines);
-- priority ranks them within their institution and source, share_of_spend is the share of the
-- institution's dispensed spend.
with

medications as (
    select * from {{ ref('dim_medication') }}
    where not is_unknown_member
),

lines as (
    select * from {{ ref('fct_prescription_line') }}
),

dispensing as (
    select * from {{ ref('fct_dispensing') }}
),

code_products as (
    -- how many products each local code stands for in its source
    select
        institution_id,
        source_system,
        drug_code,
        count(*) as products_for_code
    from medications
    group by institution_id, source_system, drug_code
),

prescribed as (
    -- a known product by its key; an unknown code by institution, source and code
    select
        institution_id,
        source_system,
        case when medication_key = '-1' then drug_code_recorded end as unknown_code,
        medication_key,
        count(*) as prescription_lines,
        sum(quantity) as quantity_prescribed,
        min(prescribed_at) as first_prescribed_at,
        max(prescribed_at) as last_prescribed_at
    from lines
    group by institution_id, source_system, unknown_code, medication_key
),

dispensed as (
    select
        institution_id,
        source_system,
        case when medication_key = '-1' then drug_code_recorded end as unknown_code,
        medication_key,
        sum(quantity) as quantity_dispensed,
        sum(amount) as spend
    from dispensing
    group by institution_id, source_system, unknown_code, medication_key
),

institution_spend as (
    select
        institution_id,
        sum(amount) as spend
    from dispensing
    group by institution_id
),

products as (
    select
        medications.medication_key as worklist_key,
        medications.institution_id,
        medications.source_system,
        medications.medication_key,
        medications.drug_code,
        case
            when code_products.products_for_code > 1 then 'ambiguous'
            else 'unmapped'
        end as reason,
        medications.generic_name,
        medications.specification,
        medications.dosage_form,
        medications.atc_mapping,
        code_products.products_for_code
    from medications
    inner join code_products
        on
            medications.institution_id = code_products.institution_id
            and medications.source_system = code_products.source_system
            and medications.drug_code = code_products.drug_code
    where code_products.products_for_code > 1 or medications.atc_code is null
),

unknown_codes as (
    select
        institution_id,
        source_system,
        unknown_code as drug_code
    from prescribed
    where unknown_code is not null
    union
    select
        institution_id,
        source_system,
        unknown_code as drug_code
    from dispensed
    where unknown_code is not null
),

worklist as (
    select
        worklist_key,
        institution_id,
        source_system,
        medication_key,
        drug_code,
        reason,
        generic_name,
        specification,
        dosage_form,
        atc_mapping,
        products_for_code
    from products
    union all
    select
        institution_id || ':' || source_system || ':' || drug_code as worklist_key,
        institution_id,
        source_system,
        '-1' as medication_key,
        drug_code,
        'unknown_code' as reason,
        null as generic_name,
        null as specification,
        null as dosage_form,
        'unmapped' as atc_mapping,
        0 as products_for_code
    from unknown_codes
),

measured as (
    select
        worklist.*,
        coalesce(prescribed.prescription_lines, 0) as prescription_lines,
        coalesce(prescribed.quantity_prescribed, 0) as quantity_prescribed,
        coalesce(dispensed.quantity_dispensed, 0) as quantity_dispensed,
        coalesce(dispensed.spend, 0) as spend,
        prescribed.first_prescribed_at,
        prescribed.last_prescribed_at
    from worklist
    left join prescribed
        on
            worklist.institution_id = prescribed.institution_id
            and worklist.source_system = prescribed.source_system
            and worklist.medication_key = prescribed.medication_key
            and worklist.drug_code = coalesce(prescribed.unknown_code, worklist.drug_code)
    left join dispensed
        on
            worklist.institution_id = dispensed.institution_id
            and worklist.source_system = dispensed.source_system
            and worklist.medication_key = dispensed.medication_key
            and worklist.drug_code = coalesce(dispensed.unknown_code, worklist.drug_code)
),

final as (
    select
        measured.worklist_key,
        measured.institution_id,
        measured.source_system,
        measured.drug_code,
        measured.reason,
        measured.medication_key,
        measured.generic_name,
        measured.specification,
        measured.dosage_form,
        measured.atc_mapping,
        measured.products_for_code::int as products_for_code,
        measured.prescription_lines::int as prescription_lines,
        measured.quantity_prescribed::numeric(14, 2) as quantity_prescribed,
        measured.quantity_dispensed::numeric(14, 2) as quantity_dispensed,
        measured.spend::numeric(14, 2) as spend,
        round(measured.spend / nullif(institution_spend.spend, 0), 6)::numeric as share_of_spend,
        measured.first_prescribed_at,
        measured.last_prescribed_at,
        rank() over (
            partition by measured.institution_id, measured.source_system
            order by measured.spend desc, measured.prescription_lines desc
        )::int as priority
    from measured
    left join institution_spend on measured.institution_id = institution_spend.institution_id
)

select * from final
