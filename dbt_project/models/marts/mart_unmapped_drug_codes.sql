{{ config(post_hook="{{ record_transform() }}") }}

-- The mapping worklist: local drug codes without an ATC code, and codes prescribed that the
-- catalogue does not know, with what they account for, biggest first (map those first).
with

medications as (
    select * from {{ ref('dim_medication') }}
),

lines as (
    select * from {{ ref('fct_prescription_line') }}
),

dispensing as (
    select * from {{ ref('fct_dispensing') }}
),

prescribed as (
    select
        drug_code_recorded as drug_code,
        count(*) as prescription_lines,
        sum(quantity) as quantity_prescribed,
        min(prescribed_at) as first_prescribed_at,
        max(prescribed_at) as last_prescribed_at
    from lines
    group by drug_code_recorded
),

dispensed as (
    select
        drug_code_recorded as drug_code,
        sum(quantity) as quantity_dispensed,
        sum(amount) as spend
    from dispensing
    group by drug_code_recorded
),

worklist as (
    select
        drug_code,
        'unmapped' as reason,
        generic_name,
        dosage_form
    from medications
    where not is_unknown_member and atc_code is null
    union all
    select
        drug_code,
        'unknown_code' as reason,
        null as generic_name,
        null as dosage_form
    from prescribed
    where drug_code not in (
            select medications.drug_code
            from medications
            where not medications.is_unknown_member
        )
),

final as (
    select
        worklist.drug_code,
        worklist.reason,
        worklist.generic_name,
        worklist.dosage_form,
        coalesce(prescribed.prescription_lines, 0)::int as prescription_lines,
        coalesce(prescribed.quantity_prescribed, 0)::numeric(14, 2) as quantity_prescribed,
        coalesce(dispensed.quantity_dispensed, 0)::numeric(14, 2) as quantity_dispensed,
        coalesce(dispensed.spend, 0)::numeric(14, 2) as spend,
        prescribed.first_prescribed_at,
        prescribed.last_prescribed_at,
        rank() over (
            order by coalesce(dispensed.spend, 0) desc, coalesce(prescribed.prescription_lines, 0) desc
        )::int as priority
    from worklist
    left join prescribed on worklist.drug_code = prescribed.drug_code
    left join dispensed on worklist.drug_code = dispensed.drug_code
)

select * from final
