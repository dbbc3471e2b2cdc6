-- One row per HIS registration with the attributes the master patient index compares, in
-- comparable form. Restricted (schema intermediate): it holds names, card numbers and phones.
-- The phone is read from the published raw rows here because staging deliberately passes no
-- phone on and the MPI is its only consumer; the same published/latest-version rule applies.
with

patients as (
    select * from {{ ref('stg_his__patients') }}
),

raw_patients as (
    {{ published_rows('raw_his', 'patients', 'patient_id') }}
),

latest_raw as (
    {{ latest_version('raw_patients', 'patient_id') }}
),

phones as (
    select
        patient_id,
        -- digits only (half-width first), and a +86 / 0086 country prefix dropped
        regexp_replace(
            regexp_replace({{ to_halfwidth('phone') }}, '[^0-9]', '', 'g'),
            '^(0086|86)(1[0-9]{10})$',
            '\2'
        ) as phone_digits
    from latest_raw
),

final as (
    select
        patients.patient_id,
        -- half-width, no whitespace, lower case: 'ＺＨＡＮＧ　San ' and 'zhangsan' compare equal
        lower({{ normalize_name('patients.patient_name') }}) as match_name,
        nullif(patients.sex, 'U') as sex,
        patients.birth_date,
        patients.id_card_no,
        coalesce(patients.is_id_card_valid, false) as is_id_card_valid,
        -- an 18-character number without its check character: blocks a mistyped check digit
        case
            when length(patients.id_card_no) = 18 then left(patients.id_card_no, 17)
        end as id_card_stem,
        nullif(phones.phone_digits, '') as phone
    from patients
    left join phones on patients.patient_id = phones.patient_id
)

select * from final
