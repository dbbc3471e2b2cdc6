{{ config(
    materialized='incremental',
    on_schema_change='append_new_columns',
    post_hook=["grant select on {{ this }} to hdp_quality_reader", "{{ record_transform() }}"],
) }}

-- How many values each cleaning rule (seed cleaning_rules) changed in the published data, one
-- row per rule and dbt build: appended, so reviewers see the effect of cleaning over time.
-- Counts only: no value leaves the landing schema. The run summary and the Data quality page
-- read the latest build (the loader may read this one mart for that page).
{#- the watermark of the HIS tables below in dags/sources/his.yml -#}
{% set watermark = 'updated_at' %}
{% set rules = [
    ('his.patients.name.halfwidth', 'patients', 'patient_id',
        'name', to_halfwidth('name')),
    ('his.patients.name.whitespace', 'patients', 'patient_id',
        to_halfwidth('name'), normalize_name('name')),
    ('his.patients.gender.code', 'patients', 'patient_id',
        'gender', normalize_sex('gender')),
    ('his.patients.birth_date.format', 'patients', 'patient_id',
        'birth_date', "to_char(" ~ parse_cn_date('birth_date') ~ ", 'YYYY-MM-DD')"),
    ('his.patients.birth_date.implausible', 'patients', 'patient_id',
        parse_cn_date('birth_date'),
        "case when " ~ parse_cn_date('birth_date') ~ " between date '1900-01-01'"
        ~ " and least(registered_at::date, current_date) then "
        ~ parse_cn_date('birth_date') ~ " end"),
    ('his.patients.id_card_no.canonical', 'patients', 'patient_id',
        'id_card_no', normalize_cn_id_card('id_card_no')),
    ('his.diagnoses.icd10_code.canonical', 'diagnoses', 'diagnosis_id',
        'icd10_code', normalize_icd10('icd10_code')),
    ('his.outpatient_visits.dept_code.canonical', 'outpatient_visits', 'visit_id',
        'dept_code', normalize_code('dept_code')),
    ('his.inpatient_admissions.dept_code.canonical', 'inpatient_admissions', 'admission_id',
        'dept_code', normalize_code('dept_code')),
] %}

with

rules as (
    select * from {{ ref('cleaning_rules') }}
),

counted as (
    {%- for rule_id, table, key, before, after in rules %}
        {%- set published %}({{ published_rows('raw_his', table) }}){% endset %}
        select
            '{{ rule_id }}' as rule_id,
            count(*) as rows_checked,
            count(*) filter (
                where ({{ before }})::text is distinct from ({{ after }})::text
            ) as values_changed
        from ({{ latest_version(published, key, watermark) }}) as latest_rows
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

final as (
    select
        counted.rule_id,
        rules.source,
        rules.table_name,
        rules.column_name,
        rules.fixes,
        counted.rows_checked::bigint as rows_checked,
        counted.values_changed::bigint as values_changed,
        '{{ invocation_id }}'::text as invocation_id,
        now() as built_at
    from counted
    inner join rules on counted.rule_id = rules.rule_id
)

select * from final
