{#- A date typed as text: '1980-01-02', '1980/1/2', '1980.1.2', '19800102', full-width digits,
    and a weekday after the date ('2018-01-01 星期一', '周一', 'Mon'). Impossible calendar dates
    such as '1980-02-30' and anything else give null. One definition, in the warehouse:
    audit.parse_cn_date() (plugins/hdp/warehouse/schema.sql), which the gate's `parses: date`
    checks call too, so a non-empty value this gives null for was quarantined before it got
    here (tests/test_date_parsing.py holds both to one table of examples). -#}
{% macro parse_cn_date(column) -%}
    audit.parse_cn_date({{ column }})
{%- endmacro %}
