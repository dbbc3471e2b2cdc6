{#- A date typed as text in one of the HIS formats: '1980-01-02', '1980/1/2' or '19800102'.
    Anything else, and impossible calendar dates such as '1980-02-30', give null instead of an
    error: to_date() would abort the whole query on one bad row. CASE is nested (not AND) because
    only CASE guarantees evaluation order, so make_date() never sees an invalid month. -#}
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
                coalesce(matched.parts[1], matched.parts[4], matched.parts[7])::int as y,
                coalesce(matched.parts[2], matched.parts[5], matched.parts[8])::int as m,
                coalesce(matched.parts[3], matched.parts[6], matched.parts[9])::int as d
            from (
                select
                    regexp_match(
                        {{ normalize_code(column) }},
                        '^(\d{4})-(\d{1,2})-(\d{1,2})$|^(\d{4})/(\d{1,2})/(\d{1,2})$|^(\d{4})(\d{2})(\d{2})$'
                    ) as parts
            ) as matched
        ) as date_parts
    )
{%- endmacro %}
