-- Type-2 history of each medication product (std_medication_product_version): a new period
-- when its list price changes (调价, 集采), or its supplier, antibiotic grade, essential-list or
-- formulary status; see macros/type2_history.sql.
{{ type2_history(
    ref('std_medication_product_version'),
    'medication_product_key',
    ['list_unit_price', 'supplier_code', 'antibiotic_grade', 'is_essential', 'is_active'],
) }}
