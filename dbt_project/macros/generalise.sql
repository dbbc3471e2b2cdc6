{#- Generalisation and keyed hashing: what the intermediate and mart layers keep of an
    identifier or a quasi-identifier instead of its value (docs/security.md). -#}

{#- A keyed HMAC (the pseudonym key, hdp_private.pseudonym) of a value the patient index
    matches on, with the kind in the hashed text so equal values of two kinds never collide.
    Equal values give equal keys, so blocking and exact comparisons work on the keys alone;
    the transformer can compute the function but never read the key. -#}
{% macro matching_key(kind, value) -%}
    hdp_private.pseudonym('mpi_{{ kind }}:' || {{ value }})
{%- endmacro %}

{#- The first day of the month of a date or timestamp: the finest date a patient dimension
    publishes. -#}
{% macro month_start(value) -%}
    date_trunc('month', {{ value }})::date
{%- endmacro %}

{#- The province (省, 自治区, or a municipality 直辖市) an administrative place name starts
    with ('湖北省武汉市江岸区' -> '湖北省', '北京市朝阳区' -> '北京市'); null when it starts
    with none. -#}
{% macro province_of(place) -%}
    substring({{ place }} from '^(.+?(?:省|自治区|特别行政区)|北京市|上海市|天津市|重庆市)')
{%- endmacro %}

{#- k for k-anonymity: every published combination of quasi-identifiers is shared by at least
    k persons (dbt var k_anonymity, env HDP_K_ANONYMITY, 5 by default). -#}
{% macro k_anonymity_k() -%}
    {{ var('k_anonymity') | int }}
{%- endmacro %}

{#- Combinations of `quasi_identifiers` (SQL expressions over `relation`) held by fewer than
    k rows, with their count; the rows matching `where` only. Null equals null here, as an
    attacker would compare. -#}
{% macro k_anonymity_violations(relation, quasi_identifiers, k, where=none) -%}
    select
        count(*) as group_size,
        {{ quasi_identifiers | join(',\n        ') }}
    from {{ relation }}
    {%- if where %}
        where {{ where }}
    {%- endif %}
    group by {{ quasi_identifiers | join(', ') }}
    having count(*) < {{ k }}
{%- endmacro %}

{#- A name in the form the patient index compares: half-width, no whitespace, lower case
    ('ＺＨＡＮＧ　San ' and 'zhangsan' compare equal). -#}
{% macro mpi_match_name(name) -%}
    lower({{ normalize_name(name) }})
{%- endmacro %}
