-- One row per source system: which institution it belongs to, what kind of source it is, and
-- the code system of its diagnoses. Mapping models take institution_id from here.
{{ union_standard('source_system') }}
