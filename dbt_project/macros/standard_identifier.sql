{#- Direct identifiers in the standard (docs/standard-model.md): a column the standard's yml
    marks `meta: {direct_identifier: true}` is only ever produced by these macros, in a mapping
    model. The value is replaced by its keyed HMAC (hdp_private.pseudonym: the transformer may
    compute it but never read the key), so equality and blocking still work on the standard and
    the clear value stops at staging. The source manifest decides (dags/sources/<source>.yml,
    contains_personal_data, passed by hdp.runtime.standard in HDP_PERSONAL_DATA_SOURCES): a
    source that declares no personal data has none of the protections personal data gets
    (audit logging, identity store), so anything it maps to a direct identifier is dropped.
    Without the variable every source counts as personal (the safe side).

    Each emits `<expression> as <column> /* standard_identifier */`: the marker is what
    tests/test_standard_manifest.py looks for on every direct-identifier column of a mapping. -#}
{% macro standard_identifier(source, column, value, prefix) -%}
{%- if source_has_personal_data(source) -%}
hdp_private.pseudonym('{{ prefix }}' || ({{ value }}))
{%- else -%}
cast(null as text)
{%- endif %} as {{ column }} /* standard_identifier */
{%- endmacro %}


{#- The one-character neighbourhood of an identifier, as keyed HMACs, so the patient index can
    tell "one character apart" (a typed slip) without the clear values. For x of length n:
    deletions = {key(x without character i)}, positions = {key(i, x without character i)}.
    Two different values a, b are one edit apart exactly when key(a) is among b's deletions (or
    b's among a's: one character more) or their positions share a key (one character
    substituted at the same place). `kind` is the matching key's (macros/generalise.sql), so a
    deletion compares with the other side's matching_key. The keys are one text, separated by
    spaces (hex HMACs hold none): a plain column every tool and fixture handles. -#}
{% macro standard_identifier_neighbours(source, column, value, kind, positional) -%}
{%- if source_has_personal_data(source) -%}
array_to_string(array(
    select hdp_private.pseudonym(
        {% if positional %}'mpi_{{ kind }}_at:' || position_::text || ':'{% else %}'mpi_{{ kind }}:'{% endif %}
        || substr({{ value }}, 1, position_ - 1) || substr({{ value }}, position_ + 1)
    )
    from generate_series(1, length({{ value }})) as position_
), ' ')
{%- else -%}
cast(null as text)
{%- endif %} as {{ column }} /* standard_identifier */
{%- endmacro %}


{% macro source_has_personal_data(source) -%}
{%- set raw = env_var('HDP_PERSONAL_DATA_SOURCES', '') -%}
{%- if raw | trim == '' -%}
{{ return(true) }}
{%- endif -%}
{{ return(source in fromjson(raw)) }}
{%- endmacro %}


{#- Two registrations' keyed values (`<field>_key`, `<field>_deletion_keys`,
    `<field>_position_keys` of int_mpi__registrations) are one character apart (see
    standard_identifier_neighbours); decided on keys only. -#}
{% macro one_edit_apart(a, b, field) -%}
(
    {{ a }}.{{ field }}_key = any(string_to_array({{ b }}.{{ field }}_deletion_keys, ' '))
    or {{ b }}.{{ field }}_key = any(string_to_array({{ a }}.{{ field }}_deletion_keys, ' '))
    or string_to_array({{ a }}.{{ field }}_position_keys, ' ')
    && string_to_array({{ b }}.{{ field }}_position_keys, ' ')
)
{%- endmacro %}
