-- Simulated pharmacy (药房/药库) source database.
-- This is the contract between the simulator, the extractor and dbt's sources: change with care.
-- Patients, visits, admissions, doctors and departments are HIS keys (the HIS source database);
-- drug codes are local (Y + 5 digits) and map to WHO ATC through drugs.atc_code.
-- Every table carries updated_at: the extractor's watermark column.
-- Quantities are in the drug's dispensing unit (drugs.unit); money in yuan.

create schema if not exists pharmacy;
create schema if not exists sim;

create table if not exists pharmacy.suppliers (
    supplier_code varchar(16) primary key, -- 'S01'
    supplier_name varchar(64) not null,    -- 国药控股北京有限公司
    lead_time_days integer not null,       -- nominal days from order to delivery
    updated_at timestamp not null
);

create table if not exists pharmacy.drugs (
    drug_code varchar(16) primary key,     -- local code 'Y17001'
    drug_id integer not null unique,       -- the same code as a number (17001 for Y17001)
    generic_name varchar(64) not null,     -- 通用名 阿莫西林
    brand_name varchar(64),                -- 商品名 of originator products; null for generics
    specification varchar(64) not null,    -- 规格 '0.25g*24粒'
    dosage_form varchar(16) not null,      -- 剂型 片剂 / 胶囊剂 / 注射剂 / ...
    unit varchar(8) not null,              -- dispensing unit 片 / 粒 / 支 / 瓶 / 袋
    pack_size integer not null,            -- dispensing units per 盒
    strength_mg numeric(14, 5),            -- mg of the DDD substance per unit; null for 中成药;
                                           -- defect: recorded in g (250 -> 0.25)
    route varchar(8) not null,             -- WHO route: O oral, P parenteral, Inhal, N, Instill
    manufacturer varchar(64) not null,
    atc_code varchar(8),                   -- WHO ATC code; null = not mapped (中成药 etc.)
    ddd_value numeric(12, 4),              -- WHO defined daily dose for the route; null if none
    ddd_unit varchar(4),                   -- g / mg / mcg / UD (UD: DDDs = quantity)
    is_essential boolean not null,         -- 国家基本药物
    antibiotic_grade varchar(8),           -- 非限制 / 限制 / 特殊; null for non-antibacterials
    supplier_code varchar(16) not null,    -- usual supplier
    unit_price numeric(10, 2) not null,    -- current retail price per unit (zero mark-up:
                                           -- also the purchase price)
    is_active boolean not null default true,
    created_at timestamp not null,
    updated_at timestamp not null          -- moves with every price change
);

create table if not exists pharmacy.drug_prices (
    price_id bigint primary key,
    drug_code varchar(16) not null,
    valid_from date not null,              -- price applies from this day (inclusive) ...
    valid_to date,                         -- ... to this day (exclusive); null = current
    unit_price numeric(10, 2) not null,
    reason varchar(16) not null,           -- initial / 集采 (volume procurement) / 调价 / 更正
    updated_at timestamp not null
);

create table if not exists pharmacy.prescriptions (
    prescription_id bigint primary key,
    encounter_type varchar(3) not null,    -- 'OP' outpatient visit, 'IP' inpatient admission
    visit_id bigint,                       -- HIS outpatient_visits.visit_id when 'OP'
    admission_id bigint,                   -- HIS inpatient_admissions.admission_id when 'IP'
    patient_id bigint not null,            -- HIS patients.patient_id
    doctor_id integer,                     -- HIS doctors.doctor_id
    dept_code varchar(16) not null,        -- HIS departments.dept_code (prescribing department)
    diagnosis_code varchar(16),            -- ICD-10 code the prescription was written for (as
                                           -- the HIS had it, so HIS format defects show here)
    prescription_type varchar(8) not null, -- 普通 / 急诊 / 儿科 (outpatient); 长期 (inpatient daily)
    prescribed_at timestamp not null,
    updated_at timestamp not null
);

create table if not exists pharmacy.prescription_lines (
    line_id bigint primary key,
    prescription_id bigint not null,
    line_no integer not null,              -- 1, 2, ... within the prescription
    drug_code varchar(16) not null,        -- defect: a code absent from drugs
    dose_per_time numeric(12, 4) not null, -- amount per administration ...
    dose_unit varchar(8) not null,         -- ... in this unit (mg, or the dispensing unit)
    frequency varchar(8) not null,         -- qd / bid / tid / qid / q8h / qn / prn
    days integer not null,                 -- days supplied (1 for inpatient daily orders)
    quantity numeric(12, 2) not null,      -- units to dispense; defect: 0
    unit varchar(8) not null,              -- unit of quantity; defect: 盒 where 片/粒 was meant
    updated_at timestamp not null
);

create table if not exists pharmacy.dispensing (
    dispense_id bigint primary key,
    line_id bigint,                        -- prescription line dispensed (a return keeps the
                                           -- line of its sale)
    drug_code varchar(16) not null,
    batch_no varchar(24),                  -- stock batch the units came from
    quantity numeric(12, 2) not null,      -- units; negative for returns (is_return);
                                           -- defect: negative without is_return
    unit_price numeric(10, 2) not null,    -- price valid on the day; defect: x100
    amount numeric(12, 2) not null,        -- quantity * unit_price as recorded
    is_return boolean not null,            -- 退药
    return_of bigint,                      -- dispense_id of the sale a return reverses
    pharmacy_code varchar(8) not null,     -- P01 门诊药房 / P02 住院药房 / P03 急诊药房
    dept_code varchar(16) not null,        -- HIS department charged
    dispensed_at timestamp not null,
    updated_at timestamp not null
);

create table if not exists pharmacy.purchase_orders (
    po_id bigint primary key,
    supplier_code varchar(16) not null,
    drug_code varchar(16) not null,
    quantity numeric(12, 2) not null,      -- units ordered (whole packs)
    unit_price numeric(10, 2) not null,    -- purchase price per unit
    ordered_at timestamp not null,
    expected_at date not null,             -- ordered day + supplier's nominal lead time
    status varchar(16) not null,           -- open / received / partial
    updated_at timestamp not null
);

create table if not exists pharmacy.receipts (
    receipt_id bigint primary key,
    po_id bigint not null,
    drug_code varchar(16) not null,
    received_at timestamp not null,        -- actual lead time varies around the nominal one
    quantity numeric(12, 2) not null,      -- units received; sometimes less than ordered
    batch_no varchar(24) not null,
    expiry_date date not null,             -- some batches arrive short-dated
    updated_at timestamp not null
);

create table if not exists pharmacy.stock_batches (
    snapshot_id bigint primary key,
    snapshot_date date not null,           -- end-of-day stock count (one row per batch held)
    drug_code varchar(16) not null,
    batch_no varchar(24) not null,
    expiry_date date not null,
    quantity_on_hand numeric(12, 2) not null, -- units; 0 rows are not listed
    unit_price numeric(10, 2) not null,    -- valuation price on the day
    updated_at timestamp not null,
    unique (snapshot_date, drug_code, batch_no)
);

-- Simulator bookkeeping: never extracted.
create table if not exists sim.clock (
    id boolean primary key default true check (id),
    seed integer not null,
    scale double precision not null,       -- 1.0: every HIS encounter; less: a sample
    first_day date not null,
    current_day date not null,             -- the last simulated day that has activity
    defect_rate double precision not null default 0.01
);

create table if not exists sim.defect_manifest (
    defect_id bigserial primary key,
    sim_day date not null,
    kind text not null,                    -- see hdp.simulator.pharmacy.DEFECT_KINDS
    table_name text not null,
    record_id bigint not null,             -- primary key of the affected row (drugs: drug_id)
    column_name text,                      -- null for row-level kinds (duplicates)
    clean_value text                       -- what the column held before the defect, if any
);

create table if not exists sim.change_log (
    change_id bigserial primary key,
    sim_day date not null,
    kind text not null,                    -- new / correction / return (advance_day only)
    table_name text not null,
    record_id bigint not null,             -- primary key (drugs: drug_id)
    column_name text
);

-- The index a DBA adds for watermark extraction: each run reads only what changed.
create index if not exists suppliers_updated_at_idx on pharmacy.suppliers (updated_at);
create index if not exists drugs_updated_at_idx on pharmacy.drugs (updated_at);
create index if not exists drug_prices_updated_at_idx on pharmacy.drug_prices (updated_at);
create index if not exists prescriptions_updated_at_idx on pharmacy.prescriptions (updated_at);
create index if not exists prescription_lines_updated_at_idx
    on pharmacy.prescription_lines (updated_at);
create index if not exists dispensing_updated_at_idx on pharmacy.dispensing (updated_at);
create index if not exists purchase_orders_updated_at_idx on pharmacy.purchase_orders (updated_at);
create index if not exists receipts_updated_at_idx on pharmacy.receipts (updated_at);
create index if not exists stock_batches_updated_at_idx on pharmacy.stock_batches (updated_at);
