-- One row per dispensing event (std_dispensing, every source and institution; re-sent copies
-- already collapsed), priced against the product's price period valid on the day. A unit
-- price 100 times the list price is fen typed as yuan: price and amount are divided by 100 and
-- the row flagged (price_check). A source without a price list gets 'no_list_price'.
with

dispensing as (
    select * from {{ ref('std_dispensing') }}
),

prices as (
    select * from {{ ref('std_medication_price') }}
),

products as (
    select * from {{ ref('std_medication_product') }}
),

lines as (
    select * from {{ ref('int_pharmacy__prescription_lines') }}
),

departments as (
    select local_unit_code as dept_code
    from {{ ref('std_organisation_unit') }}
    where source_system = 'his'
),

priced as (
    -- a join, not a correlated subquery: the planner hashes the price list once
    select distinct on (dispensing.dispensing_key)
        dispensing.*,
        prices.unit_price as list_unit_price
    from dispensing
    left join prices
        on
            dispensing.medication_product_key = prices.medication_product_key
            and dispensing.dispensed_at::date >= prices.valid_from
            and (prices.valid_to is null or dispensing.dispensed_at::date < prices.valid_to)
    order by dispensing.dispensing_key asc, prices.valid_from desc, prices.source_record_id desc
),

checked as (
    select
        *,
        case
            when list_unit_price is null then 'no_list_price'
            when unit_price_recorded = list_unit_price then 'matches_list'
            when abs(unit_price_recorded - 100 * list_unit_price) <= 0.01 * list_unit_price then 'fixed_100x'
            else 'differs_from_list'
        end as price_check
    from priced
),

final as (
    select
        checked.dispensing_key,
        checked.institution_id,
        checked.source_system,
        checked.source_record_id as dispense_id,
        checked.line_id,
        checked.medication_order_line_key,
        coalesce(products.medication_product_key, '-1') as medication_key,
        checked.local_drug_code as drug_code_recorded,
        checked.local_drug_name as drug_name_recorded,
        products.atc_code,
        checked.batch_no,
        checked.quantity,
        case
            when checked.price_check = 'fixed_100x' then round(checked.unit_price_recorded / 100, 2)
            else checked.unit_price_recorded
        end as unit_price,
        case
            when checked.price_check = 'fixed_100x' then round(checked.amount_recorded / 100, 2)
            else checked.amount_recorded
        end as amount,
        checked.unit_price_recorded,
        checked.amount_recorded,
        checked.list_unit_price,
        checked.price_check,
        checked.price_check = 'fixed_100x' as is_price_100x,
        -- see int_pharmacy__prescription_lines: DDDs = quantity x strength / DDD
        {{ ddds('checked.quantity', 'products') }} as ddd,
        checked.is_return,
        checked.returned_source_record_id as returned_dispense_id,
        checked.pharmacy_code,
        coalesce(departments.dept_code, '-1') as department_key,
        lines.encounter_type,
        lines.encounter_key,
        coalesce(lines.patient_key, '-1') as patient_key,
        checked.dispensed_at,
        checked.duplicates_collapsed,
        products.medication_product_key is null as has_unknown_drug,
        departments.dept_code is null as has_unknown_department,
        lines.line_id is null as has_unknown_line,
        checked.data_source
    from checked
    left join products on checked.medication_product_key = products.medication_product_key
    left join departments on checked.local_department_code = departments.dept_code
    left join lines on checked.medication_order_line_key = lines.medication_order_line_key
)

select * from final
