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
            weight ~ ' * substr(' ~ normalised ~ ', ' ~ loop.index ~ ', 1)::int'
        ) -%}
    {%- endfor -%}
    coalesce(
        case
            when {{ normalised }} ~ '^[0-9]{17}[0-9X]$'
                then
                    substr('10X98765432', ({{ weighted_digits | join(' + ') }}) % 11 + 1, 1)
                    = substr({{ normalised }}, 18, 1)
                    and {{ parse_cn_date('substr(' ~ normalised ~ ', 7, 8)') }} is not null
        end,
        false
    )
{%- endmacro %}
