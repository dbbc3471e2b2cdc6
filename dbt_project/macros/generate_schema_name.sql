{#- Models land in exactly the schema they name (staging, intermediate, marts, reference),
    not dbt's default "<target_schema>_<custom>": the platform's grants are written per schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
