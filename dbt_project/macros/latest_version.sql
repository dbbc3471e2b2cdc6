{#- The latest version of each key in an append-only load: a record corrected in the source
    arrives again with a newer updated_at; the batch id breaks ties between re-sent copies.
    `distinct on` rather than a row_number() filter: the planner estimates its output as the
    number of keys, where a window filter is estimated at a handful of rows and invites nested
    loops that re-run the whole staging view for every row downstream. -#}
{% macro latest_version(relation, key_column) -%}
    select distinct on (candidate.{{ key_column }}) candidate.*
    from {{ relation }} as candidate
    order by candidate.{{ key_column }} asc, candidate.updated_at desc, candidate._batch_id desc
{%- endmacro %}
