-- Standard entity "lab observation" (检验结果): the union of every source's map_<source>__lab_observation
-- (docs/standard-model.md); the columns, types and code systems are in std_lab_observation.yml.
{{ union_standard('lab_observation') }}
