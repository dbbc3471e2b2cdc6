{#- The latest version of each key in an append-only load: a record corrected in the source
    arrives again with a newer watermark; the batch id breaks ties between re-sent copies.
    `distinct on` rather than a row_number() filter: the planner estimates its output as the
    number of keys, where a window filter is estimated at a handful of rows and invites nested
    loops that re-run the whole staging view for every row downstream.
    `key_column`: a column or a list of them (a composite key, as in the manifest);
    `version_column`: the table's watermark as its manifest names it (dags/sources/<source>.yml;
    a timestamp, timestamptz or integer column), no default: tests/test_watermark.py checks each
    staging model names its manifest's. -#}
{% macro latest_version(relation, key_column, version_column) -%}
    {%- set keys = [] -%}
    {%- for column in ([key_column] if key_column is string else key_column) -%}
        {%- set _ = keys.append('candidate.' ~ column) -%}
    {%- endfor -%}
    select distinct on ({{ keys | join(', ') }}) candidate.*
    from {{ relation }} as candidate
    order by {{ keys | join(' asc, ') }} asc, candidate.{{ version_column }} desc, candidate._batch_id desc
{%- endmacro %}
