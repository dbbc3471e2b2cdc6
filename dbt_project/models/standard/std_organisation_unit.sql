-- One row per organisation unit (department, division) of a source.
{{ union_standard('organisation_unit') }}
