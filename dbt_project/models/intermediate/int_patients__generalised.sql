{#- The planner's row estimates for stacked windows / pair joins are far too high, so JIT
    compilation would start and cost ~10x the query itself (measured: 6.8 s of 7.4 s). -#}
{{ config(pre_hook="set local jit = off") }}

-- One row per person: what the patient dimensions publish about them, generalised and, where a
-- combination is rare, suppressed, so that every published profile is shared by at least k
-- persons (k-anonymity; k = var k_anonymity, 5 by default).
--
-- The quasi-identifiers are those an analyst sees when joining dim_patient to
-- dim_patient_history: sex, birth year, age band, birth province (from the card), month of
-- first registration, and the residence history (province per period, periods from the first
-- of a month). Persons whose profile is shared by fewer than k have, in this order, the
-- registration month, the residence history (one period, province unknown), the birth
-- province, the birth year, the age band and the sex suppressed, each step only for those
-- still in a group under k; a last group under k of fully suppressed persons is filled up to k
-- from the largest group (which keeps at least k). Suppressed values are null / 'unknown' /
-- 'U', as an unknown value is.
{%- set k = k_anonymity_k() %}
{%- set no_residence = "'@1900-01-01'" %}
{%- set steps = [
    ('first_registered_month', 'null::date'),
    ('residence_signature', no_residence),
    ('birth_region_code', 'null::text'),
    ('birth_year', 'null::int'),
    ('age_band', "'unknown'"),
    ('sex', "'U'"),
] %}
{%- set quasi_identifiers = steps | map(attribute=0) | list %}
{%- set suppressed_value = dict(steps) %}

with

patients as (
    select * from {{ ref('int_patients__deduplicated') }}
),

history as (
    select * from {{ ref('int_history__patients') }}
),

residence as (
    select
        patient_key,
        string_agg(
            residence_province || '@' || valid_from::date::text, ',' order by valid_from
        ) as residence_signature
    from history
    group by patient_key
),

step_0 as (
    select
        patients.patient_key,
        patients.sex,
        extract(year from patients.birth_date)::int as birth_year,
        -- as of the build date; fct_encounter carries the band at each encounter
        {{ age_band(age_in_years('patients.birth_date', 'current_date')) }} as age_band,
        patients.birth_region_code,
        {{ month_start('patients.first_registered_at') }} as first_registered_month,
        coalesce(residence.residence_signature, {{ no_residence }}) as residence_signature
    from patients
    left join residence on patients.patient_key = residence.patient_key
),

{%- for column, _ in steps %}

    counted_{{ loop.index0 }} as (
        select
            *,
            count(*) over (partition by {{ quasi_identifiers | join(', ') }}) as group_size
        from step_{{ loop.index0 }}
    ),

    step_{{ loop.index }} as (
        select
            {%- for qi in quasi_identifiers %}
                {%- if qi == column %}
                    case when group_size < {{ k }} then {{ suppressed_value[qi] }} else {{ qi }} end as {{ qi }},
                {%- else %}
                    {{ qi }},
                {%- endif %}
            {%- endfor %}
            patient_key
        from counted_{{ loop.index0 }}
    ),
{%- endfor %}

{%- set last = steps | length %}

counted_last as (
    select
        *,
        count(*) over (partition by {{ quasi_identifiers | join(', ') }}) as group_size,
        -- one text per combination (null and '' stay apart): the donor group's members
        row({{ quasi_identifiers | join(', ') }})::text as profile
    from step_{{ last }}
),

-- the fully suppressed persons still under k (one group: every value suppressed)
residual as (
    select count(*) as residual_size
    from counted_last
    where group_size < {{ k }}
),

donor_group as (
    select profile
    from counted_last
    where group_size >= 2 * {{ k }}
    order by group_size desc, profile asc
    limit 1
),

donors as (
    select counted_last.patient_key
    from counted_last
    inner join donor_group on counted_last.profile = donor_group.profile
    cross join residual
    where residual.residual_size > 0
    order by counted_last.patient_key
    limit (select greatest({{ k }} - remaining.residual_size, 0) from residual as remaining)
),

final as (
    select
        counted_last.patient_key,
        {%- for qi in quasi_identifiers %}
            case
                when donors.patient_key is not null then {{ suppressed_value[qi] }}
                else counted_last.{{ qi }}
            end as {{ qi }},
        {%- endfor %}
        patients.his_record_count,
        patients.is_id_card_valid,
        patients.data_source
    from counted_last
    inner join patients on counted_last.patient_key = patients.patient_key
    left join donors on counted_last.patient_key = donors.patient_key
)

select
    patient_key,
    sex,
    birth_year,
    age_band,
    birth_region_code,
    first_registered_month,
    residence_signature = {{ no_residence }} as is_residence_unpublished,
    his_record_count,
    is_id_card_valid,
    data_source
from final
