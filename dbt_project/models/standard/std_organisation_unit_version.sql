-- Every published version of each organisation unit of a source.
{{ union_standard('organisation_unit_version') }}
