{#- A date typed as text in one of the HIS formats: '1980-01-02', '1980/1/2' or '19800102'.
    Anything else, and impossible calendar dates such as '1980-02-30', give null instead of an
    error: to_date() would abort the whole query on one bad row. CASE is nested (not AND) because
    only CASE guarantees evaluation order, so make_date() never sees an invalid month.
    `limit 1` and `offset 0` keep the planner from inlining the subqueries, which would copy
    the input expression into every reference and evaluate it a dozen times a row. -#}
{% macro parse_cn_date(column) -%}
    (
        select
            case
                when
                    date_parts.y between 1 and 9999
                    and date_parts.m between 1 and 12
                    and date_parts.d >= 1
                    then
                        case
                            when
                                date_parts.d <= extract(
                                    day from make_date(date_parts.y, date_parts.m, 1)
                                    + interval '1 month - 1 day'
                                )
                                then make_date(date_parts.y, date_parts.m, date_parts.d)
                        end
            end
        from (
            select
                case
                    when date_text.date_format = 'compact' then substr(date_text.t, 1, 4)::int
                    when date_text.date_format = 'separated' then split_part(date_text.t, '-', 1)::int
                end as y,
                case
                    when date_text.date_format = 'compact' then substr(date_text.t, 5, 2)::int
                    when date_text.date_format = 'separated' then split_part(date_text.t, '-', 2)::int
                end as m,
                case
                    when date_text.date_format = 'compact' then substr(date_text.t, 7, 2)::int
                    when date_text.date_format = 'separated' then split_part(date_text.t, '-', 3)::int
                end as d
            from (
                select
                    -- one separator throughout: '1980/1/2' -> '1980-1-2'; '1980-1/2' is rejected
                    case
                        when typed.t ~ '^[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}$' then replace(typed.t, '/', '-')
                        else typed.t
                    end as t,
                    case
                        when typed.t ~ '^[0-9]{8}$' then 'compact'
                        when typed.t ~ '^[0-9]{4}(-[0-9]{1,2}-|/[0-9]{1,2}/)[0-9]{1,2}$' then 'separated'
                    end as date_format
                from (select {{ normalize_code(column) }} as t limit 1) as typed
                offset 0
            ) as date_text
            offset 0
        ) as date_parts
    )
{%- endmacro %}
