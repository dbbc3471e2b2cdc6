{#- The planner's row estimates for stacked windows / pair joins are far too high, so JIT
    compilation would start and cost ~10x the query itself (measured: 6.8 s of 7.4 s). -#}
{{ config(pre_hook="set local jit = off") }}

-- Every candidate pair compared field by field, scored Fellegi–Sunter style, and decided.
-- The same valid card number links (the deterministic rule) unless the names differ by more
-- than one character. Levels per field: name exact / one_edit (one character apart, e.g. a homophone typed for
-- one character) / different; birth date, sex and phone same or different; the ID card number
-- same_valid (the deterministic rule), both_valid_different (never linked), near (equal or one
-- character apart while at least one side is invalid) or different; 'missing' when either side
-- has no value. Weights and thresholds: vars mpi_* in dbt_project.yml.
-- Equality is decided on the keyed HMACs of int_mpi__registrations, and so is "one character
-- apart": a's key among b's one-character deletions (or b's among a's), or a shared
-- (position, deletion) key (one character substituted), macros/standard_identifier.sql. No
-- clear value is read.
{%- set probabilities = var('mpi_comparison_levels') %}
{#- the levels that carry a weight; the rest (missing, same_valid, both_valid_different) add 0 -#}
{%- set weighted_levels = {
    'name': ['exact', 'one_edit', 'different'],
    'birth_date': ['exact', 'different'],
    'sex': ['same', 'different'],
    'phone': ['same', 'different'],
    'id_card': ['near', 'different'],
} %}
{%- set fields = ['name', 'birth_date', 'sex', 'phone', 'id_card'] %}

with

candidate_pairs as (
    select * from {{ ref('int_mpi__candidate_pairs') }}
),

registrations as (
    select * from {{ ref('int_mpi__registrations') }}
),

compared as (
    select
        candidate_pairs.patient_id_a,
        candidate_pairs.patient_id_b,
        candidate_pairs.blocks,
        case
            when reg_a.name_key is null or reg_b.name_key is null then 'missing'
            when reg_a.name_key = reg_b.name_key then 'exact'
            when {{ one_edit_apart('reg_a', 'reg_b', 'name') }} then 'one_edit'
            else 'different'
        end as name_level,
        case
            when reg_a.birth_date is null or reg_b.birth_date is null then 'missing'
            when reg_a.birth_date = reg_b.birth_date then 'exact'
            else 'different'
        end as birth_date_level,
        case
            when reg_a.sex is null or reg_b.sex is null then 'missing'
            when reg_a.sex = reg_b.sex then 'same'
            else 'different'
        end as sex_level,
        case
            when reg_a.phone_key is null or reg_b.phone_key is null then 'missing'
            when reg_a.phone_key = reg_b.phone_key then 'same'
            else 'different'
        end as phone_level,
        case
            when reg_a.id_card_key is null or reg_b.id_card_key is null then 'missing'
            when reg_a.is_id_card_valid and reg_b.is_id_card_valid
                then
                    case
                        when reg_a.id_card_key = reg_b.id_card_key then 'same_valid'
                        else 'both_valid_different'
                    end
            when reg_a.id_card_key = reg_b.id_card_key then 'near'
            when {{ one_edit_apart('reg_a', 'reg_b', 'id_card') }} then 'near'
            else 'different'
        end as id_card_level
    from candidate_pairs
    inner join registrations as reg_a on candidate_pairs.patient_id_a = reg_a.patient_id
    inner join registrations as reg_b on candidate_pairs.patient_id_b = reg_b.patient_id
),

weighted as (
    select
        {%- for field in fields %}
            case {{ field }}_level
                {%- for level in weighted_levels[field] %}
                    {%- set p = probabilities[field][level] %}
                    when '{{ level }}' then ln({{ p['m'] }}::float8 / {{ p['u'] }}) / ln(2)
                {%- endfor %}
                else 0
            end as {{ field }}_weight,
        {%- endfor %}
        compared.*
    from compared
),

scored as (
    select
        *,
        round(({{ fields | map('string') | join('_weight + ') }}_weight)::numeric, 2) as score
    from weighted
),

final as (
    select
        patient_id_a,
        patient_id_b,
        blocks,
        name_level,
        birth_date_level,
        sex_level,
        phone_level,
        id_card_level,
        score,
        case
            -- one valid card number typed for two different names (a relative's card, a
            -- clerk's slip) is a question for a person, not a link
            when id_card_level = 'same_valid' and name_level = 'different' then 'review'
            when id_card_level = 'same_valid' then 'id_card'
            -- a guard: two valid, different card numbers are two people, whatever the score
            when id_card_level = 'both_valid_different' then 'non_match'
            when score >= {{ var('mpi_match_threshold') }} then 'match'
            when score >= {{ var('mpi_review_threshold') }} then 'review'
            else 'non_match'
        end as decision
    from scored
)

select * from final
