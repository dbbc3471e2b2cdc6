-- Standard entity "dispensing / sale" (发药, 零售): the union of every source's map_<source>__dispensing
-- (docs/standard-model.md); the columns, types and code systems are in std_dispensing.yml.
{{ union_standard('dispensing') }}
