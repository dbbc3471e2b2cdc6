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


{#- The source's own integer id back from a HIS encounter's record id ('OP|123' -> 123) or,
    with key=true, from its standard key ('H001:his:OP|123' -> 123). -#}
{% macro standard_record_id(column, key=false) -%}
{%- if key -%}
split_part(split_part({{ column }}, ':', 3), '|', 2)::bigint
{%- else -%}
split_part({{ column }}, '|', 2)::bigint
{%- endif -%}
{%- endmacro %}


{#- The source_record_id part of a standard key ('H001:his:D0101' -> 'D0101'): institution
    codes and source names hold no ':'. -#}
{% macro standard_record_id_text(column) -%}
substr({{ column }}, length(split_part({{ column }}, ':', 1)) + length(split_part({{ column }}, ':', 2)) + 3)
{%- endmacro %}
