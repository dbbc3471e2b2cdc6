-- Standard entity "medication order line" (处方明细): the union of every source's map_<source>__medication_order_line
-- (docs/standard-model.md); the columns, types and code systems are in std_medication_order_line.yml.
{{ union_standard('medication_order_line') }}
