-- Standard entity "medication price": the union of every source's map_<source>__medication_price
-- (docs/standard-model.md); the columns, types and code systems are in std_medication_price.yml.
{{ union_standard('medication_price') }}
