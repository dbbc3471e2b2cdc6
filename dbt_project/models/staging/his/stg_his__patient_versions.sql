-- Every published version of each HIS registration (patient_id, updated_at), reduced to what
-- the patients' type-2 history tracks: the district of residence (区/县, the address's
-- administrative prefix). The street address itself never leaves this view.
with

source as (
    {{ published_rows('raw_his', 'patients') }}
),

versions as (
    {{ every_version('source', 'patient_id') }}
),

renamed as (
    select
        patient_id,
        substring(
            regexp_replace({{ to_halfwidth('address') }}, '\s+', '', 'g')
            from '^((?:[^省]+省)?[^市]+市[^区县市]+?[区县市])'
        ) as residence_district,
        updated_at,
        _batch_id
    from versions
)

select * from renamed
