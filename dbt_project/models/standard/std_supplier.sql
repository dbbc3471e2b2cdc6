-- Standard entity "supplier" (供应商) of a pharmacy, with the lead time it promises.: the union of every source's map_<source>__supplier
-- (docs/standard-model.md); the columns, types and code systems are in std_supplier.yml.
{{ union_standard('supplier') }}
