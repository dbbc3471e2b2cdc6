-- Standard entity "stock" (库存): the union of every source's map_<source>__stock
-- (docs/standard-model.md); the columns, types and code systems are in std_stock.yml.
{{ union_standard('stock') }}
