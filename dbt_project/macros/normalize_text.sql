{#- Free text to a comparable form: half-width, all whitespace removed, '' as null.
    Used for names, where HIS entry leaves full-width letters and stray spaces. -#}
{% macro normalize_name(column) -%}
    nullif(regexp_replace({{ to_halfwidth(column) }}, '\s+', '', 'g'), '')
{%- endmacro %}

{#- A code: half-width, trimmed, upper case, '' as null. -#}
{% macro normalize_code(column) -%}
    nullif(upper(trim({{ to_halfwidth(column) }})), '')
{%- endmacro %}
