-- Simulated HIS of Hospital B (institution H002, a city hospital that joined the group): the
-- contract between hdp_sim/hospital_b.py, the extractor and dbt's raw_hisb sources.
-- Another vendor's system: tables and columns named by pinyin initials, its own codes (sex as
-- 男/女, local department and drug codes, ICD-10 national clinical edition 2.0 diagnoses), and
-- business times stored as text in more than one format. No table has updated_at: each has a
-- change-time column under its own name (gxsj 更新时间, xgsj 修改时间, czsj 操作时间), the
-- watermark its manifest (dags/sources/hisb.yml) names. mzgh and cfmx number their rows with a
-- monotonic id; the extractor's watermark is a timestamp, so czsj is what it reads.

create schema if not exists hisb;
create schema if not exists sim;

create table if not exists hisb.ksdm (        -- 科室代码: departments
    ksdm varchar(8) primary key,              -- the hospital's own code: 'NK01', 'JZK'
    ksmc varchar(64) not null,                -- 科室名称: 呼吸内科
    kslb varchar(8) not null,                 -- 科室类别: 临床 / 急诊 / 医技
    zfbz char(1) not null default '0',        -- 作废标志: '1' retired
    gxsj timestamp not null                   -- 更新时间 (watermark)
);

create table if not exists hisb.ysxx (        -- 医生信息: doctors
    ysdm varchar(8) primary key,              -- 'YS0001'
    ysxm varchar(32) not null,                -- 医生姓名
    ksdm varchar(8),
    zc varchar(16) not null,                  -- 职称: 主任医师 / 副主任医师 / 主治医师 / 住院医师
    xb varchar(2),                            -- 男 / 女
    gxsj timestamp not null
);

create table if not exists hisb.brxx (        -- 病人信息: patient registry
    brid bigint primary key,                  -- the hospital's local patient id
    jzkh varchar(16) not null,                -- 就诊卡号: the card the patient carries
    xm varchar(64),                           -- 姓名: name variants (traditional, spacing, pinyin)
    xb varchar(2),                            -- 男 / 女
    csrq varchar(16),                         -- 出生日期, text: '1980-01-02', '19800102', '1980/1/2'
    zjlx varchar(8),                          -- 证件类型: 身份证 / 护照 / null (none shown)
    sfzh varchar(20),                         -- 证件号码: card number (some missing, mistyped)
    lxdh varchar(20),                         -- 联系电话
    dz varchar(128),                          -- 地址
    djsj varchar(20) not null,                -- 登记时间, text in more than one format
    xgsj timestamp not null                   -- 修改时间 (watermark)
);

create table if not exists hisb.mzgh (        -- 门诊挂号: outpatient registrations
    ghxh bigint primary key,                  -- 挂号序号: monotonic
    brid bigint,                              -- defect: may name no patient
    ksdm varchar(8),
    ysdm varchar(8),
    ghsj varchar(20) not null,                -- 挂号时间, text: '2024-01-02 08:30:05',
                                              -- '2024/1/2 8:30' or '20240102083005'
    ghlb varchar(8) not null,                 -- 挂号类别: 普通 / 专家 / 急诊
    ghf numeric(10, 2),                       -- 挂号费
    thbz char(1) not null,                    -- 退号标志: '1' cancelled
    czsj timestamp not null                   -- 操作时间 (watermark: no updated_at here)
);

create table if not exists hisb.zyjl (        -- 住院记录: inpatient stays
    zyh varchar(12) primary key,              -- 住院号: 'ZY24000001'
    brid bigint,
    ksdm varchar(8),
    ysdm varchar(8),
    bq varchar(16),                           -- 病区
    ryrq varchar(20) not null,                -- 入院日期, text in more than one format
    cyrq varchar(20),                         -- 出院日期, text; null while in hospital
    cyqk varchar(8),                          -- 出院情况: 治愈 / 好转 / 未愈 / 转院 / 死亡
    zfy numeric(12, 2),                       -- 总费用
    xgsj timestamp not null
);

create table if not exists hisb.zdxx (        -- 诊断信息: diagnoses
    zdxh bigint primary key,                  -- 诊断序号
    jzlx varchar(4) not null,                 -- 就诊类型: 门诊 (jzh = ghxh) / 住院 (jzh = zyh)
    jzh varchar(12) not null,
    zddm varchar(16),                         -- ICD-10 national clinical edition 2.0: 'J18.900',
                                              -- extension codes 'J18.900x001'
    zdmc varchar(64),
    zdlb varchar(8) not null,                 -- 诊断类别: 主要诊断 / 其他诊断
    czsj timestamp not null
);

create table if not exists hisb.ypzd (        -- 药品字典: drug catalogue (names only, no ATC)
    ypdm varchar(8) primary key,              -- local drug code
    ypmc varchar(64) not null,                -- 药品名称
    gg varchar(32),                           -- 规格
    dw varchar(8),                            -- 单位
    dj numeric(10, 2),                        -- 单价
    gxsj timestamp not null
);

create table if not exists hisb.cfmx (        -- 处方明细: prescription lines (outpatient)
    mxxh bigint primary key,                  -- 明细序号: monotonic
    cfh varchar(16) not null,                 -- 处方号
    ghxh bigint,                              -- the registration it belongs to
    ypdm varchar(8),                          -- defect: may name no drug
    sl numeric(10, 2),                        -- 数量
    dw varchar(8),
    je numeric(12, 2),                        -- 金额; defect: negative
    kfsj varchar(20) not null,                -- 开方时间, text in more than one format
    czsj timestamp not null                   -- 操作时间 (watermark)
);

-- Simulator bookkeeping: never extracted (the reader may not even see it).
create table if not exists sim.clock (
    id boolean primary key default true check (id),
    seed integer not null,
    scale double precision not null,
    first_day date not null,
    current_day date not null,
    defect_rate double precision not null
);

create table if not exists sim.defect_manifest (
    defect_id bigserial primary key,
    sim_day date not null,
    kind text not null,                       -- see hdp_sim.hospital_b.DEFECT_KINDS
    table_name text not null,
    record_id text not null,                  -- the row's key (zyh and ksdm are text)
    column_name text,
    clean_value text                          -- what the column held before the defect
);

create table if not exists sim.person_truth (
    brid bigint primary key,                  -- every Hospital B registration ...
    person_id bigint not null,                -- ... and its person (Hospital A's ids for A's people)
    sex char(1) not null,
    birth_date date not null
);

-- The true cross-hospital pairs: a person of Hospital A's registry (his.patients.patient_id,
-- institution H001) registered at Hospital B under brid (H002).
create table if not exists sim.cross_hospital_truth (
    brid bigint primary key,
    his_patient_id bigint not null,
    person_id bigint not null
);

create index if not exists ksdm_gxsj_idx on hisb.ksdm (gxsj);
create index if not exists ysxx_gxsj_idx on hisb.ysxx (gxsj);
create index if not exists brxx_xgsj_idx on hisb.brxx (xgsj);
create index if not exists mzgh_czsj_idx on hisb.mzgh (czsj);
create index if not exists zyjl_xgsj_idx on hisb.zyjl (xgsj);
create index if not exists zdxx_czsj_idx on hisb.zdxx (czsj);
create index if not exists ypzd_gxsj_idx on hisb.ypzd (gxsj);
create index if not exists cfmx_czsj_idx on hisb.cfmx (czsj);
