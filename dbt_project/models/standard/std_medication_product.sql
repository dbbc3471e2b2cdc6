-- Standard entity "medication product" (药品): the union of every source's map_<source>__medication_product
-- (docs/standard-model.md); the columns, types and code systems are in std_medication_product.yml.
{{ union_standard('medication_product') }}
