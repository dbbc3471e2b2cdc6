{#- Every published version of each key in an append-only load, once: the landing keeps each
    version the extractor saw (a record changed in the source arrives again with a newer
    updated_at); a re-sent copy of the same version is collapsed, the latest batch winning. -#}
{% macro every_version(relation, key_column) -%}
    select distinct on (candidate.{{ key_column }}, candidate.updated_at) candidate.*
    from {{ relation }} as candidate
    order by candidate.{{ key_column }} asc, candidate.updated_at asc, candidate._batch_id desc
{%- endmacro %}


{#- Type-2 history from versions: one row per period in which the tracked columns held the same
    values. `relation` has one row per (key, updated_at). Versions that change no tracked column
    (a corrected phone number, a re-sent copy) extend the current period instead of opening one.
    The first period starts at 1900-01-01 (the value held before the warehouse first saw it) and
    the current one ends at 9999-12-31, so every fact finds exactly one period:
    valid_from <= event time < valid_to. The version key is a hash of the key and valid_from,
    the same in every rebuild of the same history. -#}
{% macro type2_history(relation, key_column, tracked_columns) -%}
    with

    versions as (
        select
            {{ key_column }},
            {{ tracked_columns | join(',\n            ') }},
            updated_at,
            md5(row({{ tracked_columns | join(', ') }})::text) as tracked_hash
        from {{ relation }}
    ),

    compared as (
        select
            *,
            lag(tracked_hash) over (
                partition by {{ key_column }} order by updated_at
            ) as previous_hash
        from versions
    ),

    periods as (
        select
            {{ key_column }},
            {{ tracked_columns | join(',\n            ') }},
            updated_at as changed_at,
            row_number() over (
                partition by {{ key_column }} order by updated_at
            ) as version_number
        from compared
        where previous_hash is null or previous_hash <> tracked_hash
    ),

    bounded as (
        select
            *,
            case
                when version_number = 1 then timestamp '1900-01-01'
                else changed_at
            end as valid_from,
            coalesce(
                lead(changed_at) over (partition by {{ key_column }} order by changed_at),
                timestamp '9999-12-31'
            ) as valid_to
        from periods
    )

    select
        {{ version_key(key_column, 'valid_from') }} as version_key,
        {{ key_column }},
        {{ tracked_columns | join(',\n        ') }},
        version_number::int as version_number,
        valid_from,
        valid_to,
        valid_to = timestamp '9999-12-31' as is_current
    from bounded
{%- endmacro %}
