-- Facts must not silently drop rows: every encounter and every diagnosis that staging
-- publishes is in the standard, and appears in its fact (broken references go to unknown
-- members instead), per institution. Staging publishes only what the gate passed, so the
-- quarantined rows are already out of all three counts.
with

counts as (
    select
        'fct_encounter' as fact,
        institution_id,
        (
            select count(*) from {{ ref('int_encounters__unioned') }} as unioned
            where unioned.institution_id = institutions.institution_id
        ) as expected_rows,
        (
            select count(*) from {{ ref('fct_encounter') }} as facts
            where facts.institution_id = institutions.institution_id
        ) as actual_rows
    from {{ ref('std_institution') }} as institutions
    union all
    select
        'fct_diagnosis' as fact,
        institution_id,
        (
            select count(*) from {{ ref('std_diagnosis') }} as diagnoses
            where diagnoses.institution_id = institutions.institution_id
        ) as expected_rows,
        (
            select count(*) from {{ ref('fct_diagnosis') }} as facts
            where facts.institution_id = institutions.institution_id
        ) as actual_rows
    from {{ ref('std_institution') }} as institutions
    union all
    -- the HIS's staging and its standard rows agree (the mapping drops nothing)
    select
        'std_diagnosis' as fact,
        'H001' as institution_id,
        (select count(*) from {{ ref('stg_his__diagnoses') }}) as expected_rows,
        (
            select count(*) from {{ ref('std_diagnosis') }} as diagnoses
            where diagnoses.source_system = 'his'
        ) as actual_rows
    union all
    select
        'std_encounter' as fact,
        'H001' as institution_id,
        (select count(*) from {{ ref('stg_his__outpatient_visits') }})
        + (select count(*) from {{ ref('stg_his__inpatient_admissions') }}) as expected_rows,
        (
            select count(*) from {{ ref('std_encounter') }} as encounters
            where encounters.source_system = 'his'
        ) as actual_rows
)

select *
from counts
where expected_rows <> actual_rows
