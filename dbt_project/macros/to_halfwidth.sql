{#- Full-width ASCII (U+FF01..U+FF5E) and the ideographic space (U+3000) to their half-width
    forms, as typed by Chinese input methods. One definition, in the warehouse:
    audit.to_halfwidth() (plugins/hdp/warehouse/schema.sql), which PostgreSQL inlines. -#}
{% macro to_halfwidth(column) -%}
    audit.to_halfwidth({{ column }})
{%- endmacro %}
