-- One row per institution of the group, as the mapping seed of one of its sources declares it.
{{ union_standard('institution') }}
