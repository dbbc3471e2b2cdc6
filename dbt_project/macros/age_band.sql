{#- Age in whole years on `as_of` for a birth date, and the band managers report by. -#}
{% macro age_in_years(birth_date, as_of) -%}
    extract(year from age({{ as_of }}, {{ birth_date }}))::int
{%- endmacro %}

{% macro age_band(age_years) -%}
    case
        when {{ age_years }} is null or {{ age_years }} < 0 then 'unknown'
        when {{ age_years }} < 15 then '0-14'
        when {{ age_years }} < 45 then '15-44'
        when {{ age_years }} < 65 then '45-64'
        else '65+'
    end
{%- endmacro %}
