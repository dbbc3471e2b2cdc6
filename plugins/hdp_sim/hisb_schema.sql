-- Simulated HIS of Hospital B (institution H002, a city hospital that joined the group): the
-- contract between hdp_sim/hospital_b.py, the extractor and dbt's raw_hisb sources. It runs on
-- MySQL/MariaDB (the project-local server, hdp.warehouse.mariadb), as such systems often do:
-- the database `hisb` is what the platform extracts (its manifest's schema), `hisb_sim` the
-- simulator's bookkeeping, which the read-only login is never granted. Both databases are
-- utf8mb4 (hdp_sim.sources makes them).
-- Another vendor's system: tables and columns named by pinyin initials, its own codes (sex as
-- 男/女 in an enum, local department and drug codes, ICD-10 national clinical edition 2.0
-- diagnoses), flags as tinyint(1) or char(1), and business times stored as text in more than one
-- format. No table has updated_at: each has a change-time column under its own name (gxsj
-- 更新时间, xgsj 修改时间, czsj 操作时间), a `datetime`, the watermark its manifest
-- (dags/sources/hisb.yml) names. mzgh and cfmx number their rows with a monotonic id; the
-- extractor's watermark is a timestamp, so czsj is what it reads.
-- One statement per `;`-terminated chunk (hospital_b.create_schema splits on ';').

create table if not exists hisb.ksdm (        -- 科室代码: departments
    ksdm varchar(8) primary key,              -- the hospital's own code: 'NK01', 'JZK'
    ksmc varchar(64) not null,                -- 科室名称: 呼吸内科
    kslb varchar(8) not null,                 -- 科室类别: 临床 / 急诊 / 医技
    zfbz tinyint(1) not null default 0,       -- 作废标志: 1 retired
    gxsj datetime not null,                   -- 更新时间 (watermark)
    key ksdm_gxsj_idx (gxsj)
) engine = InnoDB comment '科室代码';

create table if not exists hisb.ysxx (        -- 医生信息: doctors
    ysdm varchar(8) primary key,              -- 'YS0001'
    ysxm varchar(32) not null,                -- 医生姓名
    ksdm varchar(8),
    zc varchar(16) not null,                  -- 职称: 主任医师 / 副主任医师 / 主治医师 / 住院医师
    xb enum('男', '女'),
    gxsj datetime not null,
    key ysxx_gxsj_idx (gxsj)
) engine = InnoDB comment '医生信息';

create table if not exists hisb.brxx (        -- 病人信息: patient registry
    brid bigint primary key,                  -- the hospital's local patient id
    jzkh varchar(16) not null,                -- 就诊卡号: the card the patient carries
    xm varchar(64),                           -- 姓名: name variants (traditional, spacing, pinyin)
    xb enum('男', '女'),
    csrq varchar(16),                         -- 出生日期, text: '1980-01-02', '19800102', '1980/1/2'
    zjlx varchar(8),                          -- 证件类型: 身份证 / 护照 / null (none shown)
    sfzh varchar(20),                         -- 证件号码: card number (some missing, mistyped)
    lxdh varchar(20),                         -- 联系电话
    dz varchar(128),                          -- 地址
    djsj varchar(20) not null,                -- 登记时间, text in more than one format
    xgsj datetime not null,                   -- 修改时间 (watermark)
    key brxx_xgsj_idx (xgsj)
) engine = InnoDB comment '病人信息';

create table if not exists hisb.mzgh (        -- 门诊挂号: outpatient registrations
    ghxh bigint primary key,                  -- 挂号序号: monotonic
    brid bigint,                              -- defect: may name no patient
    ksdm varchar(8),
    ysdm varchar(8),
    ghsj varchar(20) not null,                -- 挂号时间, text: '2024-01-02 08:30:05',
                                              -- '2024/1/2 8:30' or '20240102083005'
    ghlb varchar(8) not null,                 -- 挂号类别: 普通 / 专家 / 急诊
    ghf decimal(10, 2),                       -- 挂号费
    thbz char(1) not null,                    -- 退号标志: '1' cancelled
    czsj datetime not null,                   -- 操作时间 (watermark: no updated_at here)
    key mzgh_czsj_idx (czsj)
) engine = InnoDB comment '门诊挂号';

create table if not exists hisb.zyjl (        -- 住院记录: inpatient stays
    zyh varchar(12) primary key,              -- 住院号: 'ZY24000001'
    brid bigint,
    ksdm varchar(8),
    ysdm varchar(8),
    bq varchar(16),                           -- 病区
    ryrq varchar(20) not null,                -- 入院日期, text in more than one format
    cyrq varchar(20),                         -- 出院日期, text; null while in hospital
    cyqk varchar(8),                          -- 出院情况: 治愈 / 好转 / 未愈 / 转院 / 死亡
    zfy decimal(12, 2),                       -- 总费用
    xgsj datetime not null,
    key zyjl_xgsj_idx (xgsj)
) engine = InnoDB comment '住院记录';

create table if not exists hisb.zdxx (        -- 诊断信息: diagnoses
    zdxh bigint primary key,                  -- 诊断序号
    jzlx varchar(4) not null,                 -- 就诊类型: 门诊 (jzh = ghxh) / 住院 (jzh = zyh)
    jzh varchar(12) not null,
    zddm varchar(16),                         -- ICD-10 national clinical edition 2.0: 'J18.900',
                                              -- extension codes 'J18.900x001'
    zdmc varchar(64),
    zdlb varchar(8) not null,                 -- 诊断类别: 主要诊断 / 其他诊断
    czsj datetime not null,
    key zdxx_czsj_idx (czsj)
) engine = InnoDB comment '诊断信息';

create table if not exists hisb.ypzd (        -- 药品字典: drug catalogue (names only, no ATC)
    ypdm varchar(8) primary key,              -- local drug code
    ypmc varchar(64) not null,                -- 药品名称
    gg varchar(32),                           -- 规格
    dw varchar(8),                            -- 单位
    dj decimal(10, 2),                        -- 单价
    gxsj datetime not null,
    key ypzd_gxsj_idx (gxsj)
) engine = InnoDB comment '药品字典';

create table if not exists hisb.cfmx (        -- 处方明细: prescription lines (outpatient)
    mxxh bigint primary key,                  -- 明细序号: monotonic
    cfh varchar(16) not null,                 -- 处方号
    ghxh bigint,                              -- the registration it belongs to
    ypdm varchar(8),                          -- defect: may name no drug
    sl decimal(10, 2),                        -- 数量
    dw varchar(8),
    je decimal(12, 2),                        -- 金额; defect: negative
    kfsj varchar(20) not null,                -- 开方时间, text in more than one format
    czsj datetime not null,                   -- 操作时间 (watermark)
    key cfmx_czsj_idx (czsj)
) engine = InnoDB comment '处方明细';

-- Simulator bookkeeping: never extracted (the reader is granted nothing on hisb_sim).
create table if not exists hisb_sim.clock (
    id tinyint(1) primary key default 1 check (id = 1),
    seed integer not null,
    scale double not null,
    first_day date not null,
    current_day date not null,
    defect_rate double not null
) engine = InnoDB;

create table if not exists hisb_sim.defect_manifest (
    defect_id bigint auto_increment primary key,
    sim_day date not null,
    kind varchar(64) not null,                -- see hdp_sim.hospital_b.DEFECT_KINDS
    table_name varchar(64) not null,
    record_id varchar(64) not null,           -- the row's key (zyh and ksdm are text)
    column_name varchar(64),
    clean_value text                          -- what the column held before the defect
) engine = InnoDB;

create table if not exists hisb_sim.person_truth (
    brid bigint primary key,                  -- every Hospital B registration ...
    person_id bigint not null,                -- ... and its person (Hospital A's ids for A's people)
    sex char(1) not null,
    birth_date date not null
) engine = InnoDB;

-- The true cross-hospital pairs: a person of Hospital A's registry (his.patients.patient_id,
-- institution H001) registered at Hospital B under brid (H002).
create table if not exists hisb_sim.cross_hospital_truth (
    brid bigint primary key,
    his_patient_id bigint not null,
    person_id bigint not null
) engine = InnoDB;
