{#- The latest version of each key in an append-only load: a record corrected in the source
    arrives again with a newer updated_at; the batch id breaks ties between re-sent copies. -#}
{% macro latest_version(relation, key_column) -%}
    select versions.*
    from (
        select
            candidate.*,
            row_number() over (
                partition by candidate.{{ key_column }}
                order by candidate.updated_at desc, candidate._batch_id desc
            ) as _version_rank
        from {{ relation }} as candidate
    ) as versions
    where versions._version_rank = 1
{%- endmacro %}
