{#- A date and time typed as text, as HIS front ends write them: '2024-01-02 08:30:05',
    '2024/1/2 8:30', '2024-01-02T08:30', '20240102083005', '202401020830', or a date alone
    ('2024-01-02', '20240102': midnight). The date part is parse_cn_date's (one definition of
    the date formats); the time must be H:MM or H:MM:SS within the day. Anything else, and
    impossible calendar dates ('2024-02-30 09:00'), give null instead of an error, so a staging
    model can flag the row rather than abort the query. CASE guards the ::interval cast. -#}
{% macro parse_cn_timestamp(column) -%}
    (
        select
            case
                when time_parts.time_text is null and time_parts.is_date_only
                    then ({{ parse_cn_date('time_parts.date_text') }})::timestamp
                when time_parts.time_text ~ '^([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$'
                    then {{ parse_cn_date('time_parts.date_text') }} + time_parts.time_text::interval
            end
        from (
            select
                case
                    when typed.t ~ '^[0-9]{12}([0-9]{2})?$' then left(typed.t, 8)
                    else split_part(typed.t, ' ', 1)
                end as date_text,
                case
                    when typed.t ~ '^[0-9]{14}$'
                        then substr(typed.t, 9, 2) || ':' || substr(typed.t, 11, 2) || ':' || substr(typed.t, 13, 2)
                    when typed.t ~ '^[0-9]{12}$' then substr(typed.t, 9, 2) || ':' || substr(typed.t, 11, 2)
                    when typed.t ~ '^[^ ]+ [^ ]+$' then split_part(typed.t, ' ', 2)
                end as time_text,
                typed.t !~ ' ' and typed.t !~ '^[0-9]{12}([0-9]{2})?$' as is_date_only
            from (
                -- one space between date and time: 'T' and runs of whitespace become ' '
                select
                    regexp_replace(
                        regexp_replace({{ normalize_code(column) }}, '^([0-9/-]+)T', '\1 '), '\s+', ' ', 'g'
                    ) as t
                limit 1
            ) as typed
            offset 0
        ) as time_parts
    )
{%- endmacro %}
