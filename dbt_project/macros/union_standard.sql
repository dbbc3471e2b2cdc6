{#- The standard layer (docs/standard-model.md): std_<entity> is the union of every source's
    mapping for that entity, map_<source>__<entity> (a model under models/mapping/<source>/ or a
    seed under seeds/mapping/<source>/).

    dbt sees a `ref` only while parsing, when the project graph is still empty, so the members
    come from the registry that hdp.runtime.standard finds in the project's files and passes in
    HDP_STANDARD_MAPPINGS (every platform process that runs dbt sets it: `python -m hdp dbt`,
    the transform DAG, the tests). Nobody edits a list to add a source. Once the graph is complete
    (execute), the macro checks that the registry names every mapping the project has, so a stale
    registry fails the build naming the missing model instead of leaving a source out.

    Each member is selected by the standard model's contract columns, in contract order: a
    mapping may carry extra columns of its own (they stop here), a missing one fails compilation
    naming it, and the contract (enforced) checks every type. An entity no source feeds yet is an
    empty relation of the contract's shape. -#}
{% macro union_standard(entity) -%}
{%- if sqlfluff_offline is defined -%}
select 1 as linted_offline
{%- else -%}
{%- set members = standard_members(entity) -%}
{%- if not execute -%}
{#- parse: record the dependencies -#}
{%- for name in members %}
-- depends_on: {{ ref(name) }}
{%- endfor %}
select 1 as parsing
{%- else -%}
{%- do check_standard_registry(entity, members) -%}
{%- set columns = model.columns.values() | list -%}
{%- if columns | length == 0 -%}
{{ exceptions.raise_compiler_error(model.name ~ " has no contract columns: declare them in its yml") }}
{%- endif -%}
{%- for name in members %}
select {% for column in columns %}{{ column.name }}{{ ", " if not loop.last }}{% endfor %}
from {{ ref(name) }}
{% if not loop.last %}union all{% endif %}
{%- else %}
select {% for column in columns %}cast(null as {{ column.data_type }}) as {{ column.name }}{{ ", " if not loop.last }}{% endfor %}
where false
{%- endfor %}
{%- endif -%}
{%- endif -%}
{%- endmacro %}


{% macro standard_members(entity) -%}
{%- set raw = env_var('HDP_STANDARD_MAPPINGS', '') -%}
{%- if raw | trim == '' -%}
{{ exceptions.raise_compiler_error("HDP_STANDARD_MAPPINGS is not set: run dbt through `python -m hdp dbt <args>` (it finds every source's mapping models, hdp.runtime.standard)") }}
{%- endif -%}
{{ return(fromjson(raw).get(entity, [])) }}
{%- endmacro %}


{% macro check_standard_registry(entity, members) -%}
{%- set found = [] -%}
{%- for node in graph.nodes.values() -%}
{%- if node.resource_type in ('model', 'seed') and node.package_name == project_name and node.name.startswith('map_') and node.name.endswith('__' ~ entity) and node.name[4:-(entity | length + 2)] | length > 0 -%}
{%- do found.append(node.name) -%}
{%- endif -%}
{%- endfor -%}
{%- set missing = found | reject('in', members) | list -%}
{%- if missing -%}
{{ exceptions.raise_compiler_error("std_" ~ entity ~ ": mapping " ~ (missing | join(', ')) ~ " is not in HDP_STANDARD_MAPPINGS (stale registry): run dbt through `python -m hdp dbt <args>`") }}
{%- endif -%}
{%- endmacro %}
