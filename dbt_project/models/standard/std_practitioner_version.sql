-- Every published version of each practitioner (doctor) of a source.
{{ union_standard('practitioner_version') }}
