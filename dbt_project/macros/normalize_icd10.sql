{#- An ICD-10 code as typed to the WHO form with the dot: 'j18.9', 'J189', ' J18.9 ', 'J18 .9'
    all become 'J18.9'; a bare category ('J18') stays as it is. The dot goes after the third
    character, which ICD-10 fixes as letter + two digits. -#}
{% macro normalize_icd10(column) -%}
    case
        when {{ icd10_compact(column) }} is null then null
        when length({{ icd10_compact(column) }}) > 3
            then
                left({{ icd10_compact(column) }}, 3)
                || '.'
                || substr({{ icd10_compact(column) }}, 4)
        else {{ icd10_compact(column) }}
    end
{%- endmacro %}

{#- Upper case, half-width, without whitespace or dots: 'j18.9 ' -> 'J189'. -#}
{% macro icd10_compact(column) -%}
    nullif(upper(regexp_replace({{ to_halfwidth(column) }}, '[\s.]+', '', 'g')), '')
{%- endmacro %}
