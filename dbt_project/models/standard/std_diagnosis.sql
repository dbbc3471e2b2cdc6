-- One row per diagnosis of a source, with the standard code and the local one.
{{ union_standard('diagnosis') }}
