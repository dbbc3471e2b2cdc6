{#- HIS gender codes to 'M' / 'F' / 'U' (unknown).
    Seen in the source: 1/2 (GB/T 2261.1), M/F in either case, 男/女, 未知, '' and null. -#}
{% macro normalize_sex(column) -%}
    case
        when {{ normalize_code(column) }} in ('1', 'M', 'MALE', '男') then 'M'
        when {{ normalize_code(column) }} in ('2', 'F', 'FEMALE', '女') then 'F'
        else 'U'
    end
{%- endmacro %}
