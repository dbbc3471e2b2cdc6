{#- Rows where a boolean SQL expression is false (rows where it is null pass). -#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not ({{ expression }})
{% endtest %}
