{#- A date and time typed as text, as HIS front ends write them: '2024-01-02 08:30:05',
    '2024/1/2 8:30', '2024-01-02T08:30', '20240102083005', '202401020830', a date alone
    ('2024-01-02', '20240102': midnight), full-width digits, a weekday after the date
    ('2024-01-05 星期五 09:30'). The date part is parse_cn_date's; the time must be H:MM or
    H:MM:SS within the day. Anything else, and impossible calendar dates ('2024-02-30 09:00'),
    give null. One definition, in the warehouse: audit.parse_cn_timestamp()
    (plugins/hdp/warehouse/schema.sql), which the gate's `parses: timestamp` checks call too:
    a non-empty value this gives null for was quarantined or counted by the gate. -#}
{% macro parse_cn_timestamp(column) -%}
    audit.parse_cn_timestamp({{ column }})
{%- endmacro %}
