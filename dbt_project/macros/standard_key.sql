{#- A standard key (docs/standard-model.md): <institution_id>:<source_system>:<source_record_id>,
    so a key says where it came from and no two institutions or sources can collide. Used in a
    mapping model that cross joins its source's row of map_<source>__source_system as
    `source_system`; a missing record id (a reference the source left empty) gives no key. -#}
{% macro standard_key(record_id, source_system='source_system') -%}
case
    when ({{ record_id }}) is not null
        then {{ source_system }}.institution_id || ':' || {{ source_system }}.source_system || ':' || ({{ record_id }})
end
{%- endmacro %}
