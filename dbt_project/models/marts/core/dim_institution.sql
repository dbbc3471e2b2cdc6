{{ config(post_hook="{{ record_transform() }}") }}

-- One row per institution of the group (std_institution), plus the unknown member '-1'. Every
-- fact and dimension row carries its institution_id; group reports roll up by it and
-- row-level security limits institution analysts by it.
with

institutions as (
    select * from {{ ref('std_institution') }}
),

sources as (
    select
        institution_id,
        string_agg(source_system, ', ' order by source_system) as source_systems
    from {{ ref('std_source_system') }}
    group by institution_id
),

known as (
    select
        institutions.institution_id as institution_key,
        institutions.institution_id,
        institutions.institution_name,
        institutions.institution_name_en,
        institutions.institution_level,
        institutions.institution_type,
        institutions.joined_group_on,
        sources.source_systems,
        false as is_unknown_member
    from institutions
    left join sources on institutions.institution_id = sources.institution_id
),

unknown_member as (
    select
        '-1' as institution_key,
        null::text as institution_id,
        'unknown' as institution_name,
        'unknown' as institution_name_en,
        null::text as institution_level,
        null::text as institution_type,
        null::date as joined_group_on,
        null::text as source_systems,
        true as is_unknown_member
)

select * from known
union all
select * from unknown_member
