-- One row per registration of a person in a source (a person registered twice is two rows;
-- the patient index in intermediate makes them one). Direct identifiers are keyed HMACs only.
{{ union_standard('person') }}
