-- Every rule of the cleaning catalogue is counted by the latest build of
-- mart_cleaning_rule_counts, and the counts are possible (changed <= checked).
with

latest as (
    select counts.*
    from {{ ref('mart_cleaning_rule_counts') }} as counts
    where counts.built_at = (
            select max(builds.built_at) from {{ ref('mart_cleaning_rule_counts') }} as builds
        )
),

rules as (
    select * from {{ ref('cleaning_rules') }}
)

select rules.rule_id
from rules
left join latest on rules.rule_id = latest.rule_id
where latest.rule_id is null or latest.values_changed > latest.rows_checked
