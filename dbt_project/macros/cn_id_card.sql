{#- Resident identity card numbers (GB 11643-1999): 6-digit region, 8-digit birth date,
    3-digit sequence (odd = male), check character by ISO 7064 MOD 11-2. -#}

{#- The number in canonical form: half-width, no spaces, upper-case 'X'; '' as null. -#}
{% macro normalize_cn_id_card(column) -%}
    nullif(upper(regexp_replace({{ to_halfwidth(column) }}, '\s+', '', 'g')), '')
{%- endmacro %}

{#- True when an already normalised number has 18 characters, a valid birth date and a
    matching check character; false otherwise (null input gives false). -#}
{% macro is_valid_cn_id_card(normalised) -%}
    {%- set weighted_digits = [] -%}
    {%- for weight in [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] -%}
        {%- set _ = weighted_digits.append(
            weight ~ ' * substr(card.card_no, ' ~ loop.index ~ ', 1)::int'
        ) -%}
    {%- endfor -%}
    {#- the subquery evaluates the input once; limit 1 keeps the planner from inlining it -#}
    (
        select
            coalesce(
                case
                    when card.card_no ~ '^[0-9]{17}[0-9X]$'
                        then
                            substr('10X98765432', ({{ weighted_digits | join(' + ') }}) % 11 + 1, 1)
                            = substr(card.card_no, 18, 1)
                            and {{ parse_cn_date('substr(card.card_no, 7, 8)') }} is not null
                end,
                false
            )
        from (select {{ normalised }} as card_no limit 1) as card
    )
{%- endmacro %}
