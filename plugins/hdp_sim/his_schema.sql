-- Simulated HIS (hospital information system) source database.
-- This is the contract between the simulator, the extractor and dbt's sources: change with care.
-- Like many real HIS databases it stores some values as free text (gender, birth date, ICD code),
-- so the warehouse sees the same inconsistencies a real hospital's does.
-- Every table carries updated_at: the extractor's watermark column.

create schema if not exists his;
create schema if not exists sim;

create table if not exists his.departments (
    dept_code varchar(16) primary key,     -- 'D0101'
    dept_name varchar(64) not null,        -- 心血管内科
    parent_code varchar(16),               -- the division ('D01' 内科); null for a division
    dept_type varchar(32) not null,        -- division / clinical / emergency / medical_technology
    is_active boolean not null default true,
    created_at timestamp not null,
    updated_at timestamp not null
);

create table if not exists his.doctors (
    doctor_id integer primary key,
    doctor_name varchar(32) not null,
    dept_code varchar(16),                 -- defect: may name no department (orphan)
    title varchar(16) not null,            -- 主任医师 / 副主任医师 / 主治医师 / 住院医师
    gender varchar(8),
    hired_on date,
    left_on date,                          -- doctors who left still appear on old visits
    updated_at timestamp not null
);

create table if not exists his.patients (
    patient_id bigint primary key,         -- HIS-internal key
    mrn varchar(16) not null,              -- medical record number (病案号)
    name varchar(64),                      -- defects: full-width characters, stray spaces
    gender varchar(8),                     -- mixed codes: 1/2, M/F, 男/女, 未知
    birth_date varchar(16),                -- text: '1980-01-02', '1980/1/2' or '19800102'
    id_card_no varchar(18),                -- GB 11643-1999 resident identity card number
    phone varchar(20),
    address varchar(128),
    registered_at timestamp not null,
    updated_at timestamp not null
);

create table if not exists his.outpatient_visits (
    visit_id bigint primary key,
    patient_id bigint,                     -- defect: may name no patient (orphan)
    dept_code varchar(16),
    doctor_id integer,
    visit_at timestamp not null,
    visit_type varchar(16) not null,       -- 普通 / 专家 / 急诊
    fee numeric(10, 2),                    -- defect: negative fee
    status varchar(16) not null,           -- completed / cancelled
    updated_at timestamp not null
);

create table if not exists his.inpatient_admissions (
    admission_id bigint primary key,
    patient_id bigint,
    dept_code varchar(16),
    attending_doctor_id integer,
    ward varchar(16),
    bed_no varchar(8),
    admitted_at timestamp not null,
    discharged_at timestamp,               -- null while in hospital; defect: before admission
    discharge_status varchar(16),          -- cured / improved / transferred / died / null
    total_cost numeric(12, 2),
    updated_at timestamp not null
);

create table if not exists his.diagnoses (
    diagnosis_id bigint primary key,
    encounter_type varchar(3) not null,    -- 'OP' outpatient visit, 'IP' inpatient admission
    encounter_id bigint not null,          -- visit_id or admission_id; defect: orphan
    icd10_code varchar(16),                -- defects: 'j18.9', 'J189', ' J18.9 '
    diagnosis_name varchar(128),
    is_primary boolean not null,
    diagnosed_at timestamp not null,
    updated_at timestamp not null
);

-- Simulator bookkeeping: never extracted.
create table if not exists sim.clock (
    id boolean primary key default true check (id),
    seed integer not null,
    scale double precision not null,
    first_day date not null,
    current_day date not null,             -- the last simulated day that has activity
    defect_rate double precision not null default 0.01
);

create table if not exists sim.defect_manifest (
    defect_id bigserial primary key,
    sim_day date not null,
    kind text not null,                    -- see hdp.simulator.his.DEFECT_KINDS
    table_name text not null,
    record_id bigint not null,             -- primary key of the affected row
    column_name text,                      -- null for row-level kinds (duplicates, orphans)
    clean_value text                       -- what the column held before the defect, if any
);

create table if not exists sim.change_log (
    change_id bigserial primary key,
    sim_day date not null,
    kind text not null,                    -- new / correction / discharge / change (advance_day)
    table_name text not null,
    record_id text not null,               -- the record's primary key (a department's is a code)
    column_name text
);

create table if not exists sim.person_truth (
    patient_id bigint primary key,         -- every HIS registration ...
    person_id bigint not null,             -- ... and the real person it belongs to
    sex char(1) not null,                  -- the person's true sex: M / F
    birth_date date not null               -- the person's true birth date
);

-- The index a DBA adds for watermark extraction: each run reads only what changed.
create index if not exists departments_updated_at_idx on his.departments (updated_at);
create index if not exists doctors_updated_at_idx on his.doctors (updated_at);
create index if not exists patients_updated_at_idx on his.patients (updated_at);
create index if not exists outpatient_visits_updated_at_idx on his.outpatient_visits (updated_at);
create index if not exists inpatient_admissions_updated_at_idx on his.inpatient_admissions (updated_at);
create index if not exists diagnoses_updated_at_idx on his.diagnoses (updated_at);
