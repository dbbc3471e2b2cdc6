{#- An ICD-10 code as typed to the WHO form with the dot: 'j18.9', 'J189', ' J18.9 ', 'J18 .9'
    all become 'J18.9'; a bare category ('J18') stays as it is. The dot goes after the third
    character, which ICD-10 fixes as letter + two digits. -#}
{% macro normalize_icd10(column) -%}
    (
        select
            case
                when length(compact.code) > 3
                    then left(compact.code, 3) || '.' || substr(compact.code, 4)
                else compact.code
            end
        -- evaluated once a row: limit 1 keeps the planner from copying it into each reference
        from (select {{ icd10_compact(column) }} as code limit 1) as compact
    )
{%- endmacro %}

{#- Upper case, half-width, without whitespace or dots: 'j18.9 ' -> 'J189'. -#}
{% macro icd10_compact(column) -%}
    nullif(upper(regexp_replace({{ to_halfwidth(column) }}, '[\s.]+', '', 'g')), '')
{%- endmacro %}
