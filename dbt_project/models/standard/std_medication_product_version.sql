-- Standard entity "medication product version": the union of every source's map_<source>__medication_product_version
-- (docs/standard-model.md); the columns, types and code systems are in std_medication_product_version.yml.
{{ union_standard('medication_product_version') }}
