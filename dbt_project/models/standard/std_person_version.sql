-- Every published version of each registration (district of residence only) of a source.
{{ union_standard('person_version') }}
