{#- Resident identity card numbers (GB 11643-1999): 6-digit region, 8-digit birth date,
    3-digit sequence (odd = male), check character by ISO 7064 MOD 11-2. One definition, in the
    warehouse (plugins/hdp/warehouse/schema.sql), which the gate's row check
    his.patients.id_card_checksum calls too: staging and the gate never disagree on a number. -#}

{#- The number in canonical form: half-width, no spaces, upper-case 'X'; '' as null. -#}
{% macro normalize_cn_id_card(column) -%}
    audit.normalize_cn_id_card({{ column }})
{%- endmacro %}

{#- True when the number (normalised first: full-width digits and 'X' count) has 18
    characters, a valid birth date and a matching check character; false otherwise (null input
    gives false). -#}
{% macro is_valid_cn_id_card(column) -%}
    audit.is_valid_cn_id_card({{ column }})
{%- endmacro %}
