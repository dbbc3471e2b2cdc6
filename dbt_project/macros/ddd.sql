{#- A WHO DDD in mg (g x 1000, mcg / 1000); null for unit doses ('UD') and drugs without one.
    The standard keeps the DDD as WHO publishes it (value + unit); the DDD arithmetic of the
    pharmacy facts needs it in the strength's unit, mg. -#}
{% macro ddd_in_mg(value, unit) -%}
    case {{ unit }}
        when 'g' then {{ value }} * 1000
        when 'mg' then {{ value }}
        when 'mcg' then {{ value }} / 1000
    end
{%- endmacro %}


{#- DDDs of a quantity of a product: quantity x strength (mg) / DDD (mg); 'UD' DDDs count
    units; null without a DDD. The same expression for prescribed and dispensed quantities. -#}
{% macro ddds(quantity, product) -%}
    round(
        case
            when {{ product }}.ddd_unit = 'UD' then {{ quantity }} / nullif({{ product }}.ddd_value, 0)
            else {{ quantity }} * {{ product }}.strength_mg
                / nullif({{ ddd_in_mg(product ~ '.ddd_value', product ~ '.ddd_unit') }}, 0)
        end,
        4
    )
{%- endmacro %}
