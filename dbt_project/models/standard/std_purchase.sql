-- Standard entity "purchase" (采购订单): the union of every source's map_<source>__purchase
-- (docs/standard-model.md); the columns, types and code systems are in std_purchase.yml.
{{ union_standard('purchase') }}
