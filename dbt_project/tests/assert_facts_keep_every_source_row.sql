-- Facts must not silently drop rows: every encounter and every diagnosis that staging
-- publishes appears in its fact (broken references go to unknown members instead).
with

counts as (
    select
        'fct_encounter' as fact,
        (select count(*) from {{ ref('int_encounters__unioned') }}) as expected_rows,
        (select count(*) from {{ ref('fct_encounter') }}) as actual_rows
    union all
    select
        'fct_diagnosis' as fact,
        (select count(*) from {{ ref('stg_his__diagnoses') }}) as expected_rows,
        (select count(*) from {{ ref('fct_diagnosis') }}) as actual_rows
)

select *
from counts
where expected_rows <> actual_rows
