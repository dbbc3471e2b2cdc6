-- One row per encounter (outpatient, emergency, inpatient admission) of a source, re-sent
-- copies included and naming the encounter they survive as.
{{ union_standard('encounter') }}
