-- Standard entity "receipt" (入库): the union of every source's map_<source>__receipt
-- (docs/standard-model.md); the columns, types and code systems are in std_receipt.yml.
{{ union_standard('receipt') }}
