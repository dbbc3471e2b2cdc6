-- One row per practitioner (doctor) of a source.
{{ union_standard('practitioner') }}
