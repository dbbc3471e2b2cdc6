{#- k-anonymity of a published table: rows are the combinations of its quasi-identifiers (SQL
    expressions) that fewer than k rows share, with their count; k from the dbt var
    k_anonymity unless given. Filter rows (the unknown member) with the test's `where` config. -#}
{% test k_anonymity(model, quasi_identifiers, k=none) %}
    {{ k_anonymity_violations(model, quasi_identifiers, k if k is not none else k_anonymity_k()) }}
{% endtest %}
