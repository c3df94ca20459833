"""`custdq sample`: realistic synthetic policy extracts (never real personal data).

Everything is drawn with numpy from one seed, column-wise, so 10M rows take a minute, and the
same seed gives the same file. Identity numbers carry correct GB 11643 check characters over
real GB/T 2260 county codes (python-stdnum's data, current and retired); values come in the
mixed formats real extracts have; customers recur across policies; a share of rows
(`defect_rate`) gets one injected defect, spread over the kinds in `DEFECTS`. A later night
against earlier extracts (`write_sample(after=...)`, `custdq sample --after`) is made by
pipeline.sample.later from the same generator.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from checks.regions import county_codes
from pipeline.errors import InputError
from pipeline.sample.vocab import (BRANCHES, CHANNELS, GIVEN, MOBILE_PREFIXES, PRODUCTS, STREETS, SURNAMES,
                                   TERMS)

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])  # GB 11643-1999
CHECK_CHARS = np.array(list("10X98765432"))
# defect kind -> relative weight
DEFECTS = {
    "missing_phone": 3, "placeholder_address": 2, "missing_insured_birth": 2, "missing_id_type": 1,
    "bad_sex": 1, "bad_date": 1, "duplicate_policy": 1, "no_policy_no": 1, "id_checksum": 2,
    "sex_mismatch": 2, "birth_mismatch": 2, "id_scientific": 1, "id_legacy_15": 1, "shared_phone": 3,
    "agent_phone": 1, "placeholder_phone": 1, "bank_short": 1, "shared_account": 1,
}


def id_numbers(region: np.ndarray, birth: pd.Series, male: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """18-character numbers with correct check characters (vectorised)."""
    n = len(region)
    seq = rng.integers(0, 500, n) * 2 + male.astype(int)  # odd sequence digit = male
    ymd = (birth.dt.year * 10000 + birth.dt.month * 100 + birth.dt.day).to_numpy(dtype=np.int64)
    body = region.astype(np.int64) * 10**11 + ymd * 1000 + seq
    digits = (body[:, None] // 10 ** np.arange(16, -1, -1)) % 10
    check = CHECK_CHARS[(digits * ID_WEIGHTS).sum(axis=1) % 11]
    return pd.Series(body.astype(str), dtype="str") + pd.Series(check, dtype="str")


def luhn_cards(prefix: str, length: int, n: int, rng: np.random.Generator) -> pd.Series:
    """Card numbers of `length` (<= 19) digits starting with `prefix`, Luhn-valid (vectorised)."""
    body = rng.integers(0, 10, (n, length - 1 - len(prefix)))
    digits = np.hstack([np.tile([int(c) for c in prefix], (n, 1)), body]).astype(np.int64)
    doubled = digits[:, ::-1].copy()
    doubled[:, ::2] *= 2  # the digit left of the check digit is doubled, then every second one
    doubled[doubled > 9] -= 9
    check = (10 - doubled.sum(axis=1) % 10) % 10
    full = np.hstack([digits, check[:, None]])
    number = (full * 10 ** np.arange(length - 1, -1, -1, dtype=np.int64)).sum(axis=1)
    return pd.Series(number.astype(str), dtype="str")


def _choice(rng, values, n, p=None) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)], dtype="str")


def _fmt_dates(d: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Mixed date formats: YYYY-MM-DD, YYYY/M/D, YYYYMMDD."""
    k = rng.choice(3, len(d), p=[0.6, 0.25, 0.15])
    iso = d.dt.strftime("%Y-%m-%d")
    slash = d.dt.year.astype(str) + "/" + d.dt.month.astype(str) + "/" + d.dt.day.astype(str)
    compact = d.dt.strftime("%Y%m%d")
    return iso.where(k == 0, slash.where(k == 1, compact)).astype("str")


def _fmt_sex(male: np.ndarray, rng: np.random.Generator) -> pd.Series:
    k = rng.choice(3, len(male), p=[0.8, 0.1, 0.1])
    table = np.array([["女", "男"], ["F", "M"], ["2", "1"]], dtype=object)
    return pd.Series(table[k, male.astype(int)], dtype="str")


def _fmt_phone(mobile: pd.Series, rng: np.random.Generator) -> pd.Series:
    k = rng.choice(4, len(mobile), p=[0.85, 0.05, 0.05, 0.05])
    spaced = "+86 " + mobile.str[:3] + " " + mobile.str[3:7] + " " + mobile.str[7:]
    dashed = mobile.str[:3] + "-" + mobile.str[3:7] + "-" + mobile.str[7:]
    return mobile.where(k == 0, spaced.where(k == 1, dashed.where(k == 2, "0086" + mobile))).astype("str")


def people(n: int, rng: np.random.Generator, today: dt.date, min_age: int, max_age: int) -> pd.DataFrame:
    regions = county_codes()
    codes = np.array(sorted(regions))
    picked = codes[rng.integers(0, len(codes), n)]
    male = rng.random(n) < 0.5
    days = rng.integers(min_age * 365 + 1, max_age * 365, n)
    birth = pd.Series(pd.Timestamp(today) - pd.to_timedelta(days, unit="D"))
    mobile = _choice(rng, MOBILE_PREFIXES, n) + pd.Series(rng.integers(0, 10**8, n), dtype=np.int64).astype(str).str.zfill(8)
    given_len = rng.random(n) < 0.7
    name = (_choice(rng, SURNAMES, n) + _choice(rng, GIVEN, n)
            + _choice(rng, GIVEN, n).where(given_len, "")).astype("str")
    place = pd.Series([regions[c].province + regions[c].prefecture.replace("市辖区", "") + regions[c].county
                       for c in picked[: min(n, 50_000)]], dtype="str")
    place = place.iloc[np.arange(n) % max(len(place), 1)].reset_index(drop=True) if n else place
    address = place + _choice(rng, STREETS, n) + pd.Series(rng.integers(1, 300, n)).astype(str) + "号"
    return pd.DataFrame({
        "name": name, "male": male, "birth": birth, "id_no": id_numbers(picked, birth, male, rng),
        "mobile": mobile, "address": address,
    })


def sample_frame(n: int, rng: np.random.Generator, today: dt.date, defect_rate: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.sample.vocab import BRANCH_WEIGHTS, CHANNEL_WEIGHTS, TERM_WEIGHTS

    def w(x):
        a = np.asarray(x, dtype=float)
        return a / a.sum()

    pool = people(max(1, int(n * 0.85)), rng, today, 20, 70)  # ~15% of policies are repeat customers
    app = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
    relation = _choice(rng, ["本人", "子女", "配偶", "父母"], n, w([40, 25, 20, 15]))
    child = people(n, rng, today, 0, 17)
    adult = people(n, rng, today, 20, 80)
    ins = adult.copy()
    is_child = (relation == "子女").to_numpy()
    ins.loc[is_child] = child.loc[is_child]
    is_self = (relation == "本人").to_numpy()
    ins.loc[is_self] = app.loc[is_self]
    blank_self = is_self & (rng.random(n) < 0.5)  # 本人 rows often leave the insured fields empty

    branch_idx = rng.choice(len(BRANCHES), n, p=w(BRANCH_WEIGHTS))
    agents_per_branch = max(2, n // 400)
    agent_no = rng.integers(0, agents_per_branch, n)
    agent_code = ("A" + pd.Series(branch_idx).astype(str).str.zfill(2) + pd.Series(agent_no).astype(str).str.zfill(5)).astype("str")
    issue = pd.Series(pd.Timestamp(today) - pd.to_timedelta(rng.integers(0, 7, n), unit="D"))
    receipt = issue + pd.to_timedelta(rng.integers(1, 10, n), unit="D")
    receipt = receipt.where(receipt <= pd.Timestamp(today))
    card = luhn_cards("622202", 19, n, rng)
    passbook = pd.Series(rng.integers(10**11, 10**12, n)).astype(str)
    bank = card.where(rng.random(n) < 0.9, passbook).astype("str")
    policy_no = "P" + str(today.year) + pd.Series(rng.permutation(n) + 1).astype(str).str.zfill(9)
    id_type = _choice(rng, ["身份证", "居民身份证", "01"], n, w([70, 20, 10]))

    def fill(values: pd.Series, blank: np.ndarray) -> pd.Series:
        return values.astype("str").mask(blank)

    f = pd.DataFrame({
        "保单号": policy_no.astype("str"),
        "承保日期": issue.dt.strftime("%Y-%m-%d").astype("str"),
        "回执日期": receipt.dt.strftime("%Y-%m-%d").astype("str"),
        "险种代码": _choice(rng, PRODUCTS, n),
        "保险期间": _choice(rng, TERMS, n, w(TERM_WEIGHTS)),
        "销售渠道": _choice(rng, CHANNELS, n, w(CHANNEL_WEIGHTS)),
        "管理机构": pd.Series(np.asarray(BRANCHES, dtype=object)[branch_idx], dtype="str"),
        "业务员代码": agent_code,
        "投保人姓名": app["name"],
        "投保人性别": _fmt_sex(app["male"].to_numpy(), rng),
        "投保人出生日期": _fmt_dates(app["birth"], rng),
        "投保人证件类型": id_type,
        "投保人证件号码": app["id_no"],
        "投保人联系地址": app["address"],
        "投保人手机": _fmt_phone(app["mobile"], rng),
        "被保险人姓名": fill(ins["name"], blank_self),
        "被保险人性别": fill(_fmt_sex(ins["male"].to_numpy(), rng), blank_self),
        "被保险人出生日期": fill(_fmt_dates(ins["birth"], rng), blank_self),
        "被保险人证件类型": fill(id_type, blank_self | (is_child & (rng.random(n) < 0.3))),
        "被保险人证件号码": fill(ins["id_no"], blank_self | (is_child & (rng.random(n) < 0.3))),
        "被保险人电话": fill(ins["mobile"], blank_self | is_child),
        "投被保人关系": relation,
        "缴费账号": bank,
        "账户户名": app["name"],
    })
    agents = _agents(f, rng, today)
    _inject(f, rng, defect_rate, agents)
    return f, agents


def _agents(f: pd.DataFrame, rng: np.random.Generator, today: dt.date) -> pd.DataFrame:
    roster = f[["业务员代码", "管理机构"]].drop_duplicates("业务员代码").reset_index(drop=True)
    p = people(len(roster), rng, today, 22, 60)
    # the agents' own accounts come from a generator of their own, seeded by the roster: the
    # extract drawn from `rng` stays what it was before the roster had accounts
    own = np.random.default_rng(zlib.crc32("|".join(roster["业务员代码"]).encode("utf-8")))
    return pd.DataFrame({"业务员代码": roster["业务员代码"], "业务员姓名": p["name"], "业务员电话": p["mobile"],
                         "业务员证件号码": p["id_no"], "管理机构": roster["管理机构"], "业务员地址": p["address"],
                         "业务员银行账号": luhn_cards("621700", 19, len(roster), own)})


def _inject(f: pd.DataFrame, rng: np.random.Generator, rate: float, agents: pd.DataFrame) -> None:
    """Give a `rate` share of rows one defect each, kinds drawn by DEFECTS weights (in place)."""
    n = len(f)
    hit = np.flatnonzero(rng.random(n) < rate)
    if not len(hit):
        return
    kinds = np.asarray(list(DEFECTS))[rng.choice(len(DEFECTS), len(hit), p=np.array(list(DEFECTS.values())) / sum(DEFECTS.values()))]

    def rows(kind: str) -> np.ndarray:
        return hit[kinds == kind]

    def put(kind: str, column: str, value) -> None:
        r = rows(kind)
        if len(r):
            f.loc[r, column] = value(r) if callable(value) else value

    ids = "投保人证件号码"
    put("missing_phone", "投保人手机", None)
    put("placeholder_address", "投保人联系地址", "不详")
    put("missing_insured_birth", "被保险人出生日期", None)
    put("missing_insured_birth", "投被保人关系", "配偶")
    put("missing_id_type", "投保人证件类型", None)
    put("bad_sex", "投保人性别", "9")
    put("bad_date", "投保人出生日期", "1990-13-45")
    put("duplicate_policy", "保单号", lambda r: f["保单号"].iloc[rng.integers(0, n, len(r))].to_numpy())
    put("no_policy_no", "保单号", None)
    put("id_checksum", ids, lambda r: f[ids].iloc[r].str[:17].to_numpy() + np.where(f[ids].iloc[r].str[17] == "0", "1", "0"))
    put("sex_mismatch", "投保人性别", lambda r: np.where(f["投保人性别"].iloc[r].isin(["男", "M", "1"]), "女", "男"))
    put("birth_mismatch", "投保人出生日期", "1900-01-01")
    put("id_scientific", ids, lambda r: (f[ids].iloc[r].str[0] + "." + f[ids].iloc[r].str[1:6] + "E+17").to_numpy())
    # 15-digit numbers were issued to people born in the 1900s only
    legacy = rows("id_legacy_15")
    legacy = legacy[f[ids].iloc[legacy].str[6:8].eq("19").to_numpy()]
    f.loc[legacy, ids] = (f[ids].iloc[legacy].str[:6] + f[ids].iloc[legacy].str[8:17]).to_numpy()
    donors = rng.integers(0, n, n)
    put("shared_phone", "投保人手机", lambda r: f["投保人手机"].iloc[donors[r]].to_numpy())
    put("agent_phone", "投保人手机", lambda r: agents.set_index("业务员代码")["业务员电话"]
        .reindex(f["业务员代码"].iloc[r]).to_numpy())
    put("placeholder_phone", "投保人手机", "13800138000")
    put("bank_short", "缴费账号", "62220")
    put("shared_account", "缴费账号", lambda r: f["缴费账号"].iloc[donors[r]].to_numpy())
    # the agent's own account as a customer's premium account (BANK_IS_AGENT, art. 11): drawn apart
    # from `rng` (as the roster's accounts are), so the other defects stay where they were
    own = np.random.default_rng(zlib.crc32(("agent-account|" + str(n)).encode("utf-8")))
    paid = np.flatnonzero(own.random(n) < rate / 30)
    if len(paid):
        f.loc[paid, "缴费账号"] = agents.set_index("业务员代码")["业务员银行账号"].reindex(
            f["业务员代码"].iloc[paid]).to_numpy()
    # the agent's own address as a customer's (ADDRESS_IS_AGENT), written another way: the province
    # left out, full-width digits, 號 for 号, a space after the county
    homes = np.flatnonzero(own.random(n) < rate / 30)
    if len(homes):
        theirs = agents.set_index("业务员代码")["业务员地址"].reindex(f["业务员代码"].iloc[homes]).astype("str")
        written = (theirs.str.replace(r"^.+?(省|自治区|特别行政区)", "", regex=True)
                   .str.replace(r"(区|县|旗)", r"\1 ", n=1, regex=True)
                   .str.translate(str.maketrans("0123456789号", "０１２３４５６７８９號")))
        f.loc[homes, "投保人联系地址"] = written.to_numpy()


CHUNK = 1_000_000


def sample_chunks(rows: int, seed: int, defect_rate: float = 0.05, business_date: dt.date = dt.date(2026, 11, 20)):
    """Yield (extract chunk, roster chunk) of at most CHUNK rows: bounded memory at 10M rows."""
    rng = np.random.default_rng(seed)
    for start in range(0, max(rows, 1), CHUNK):
        part, agents = sample_frame(max(1, min(CHUNK, rows - start)), rng, business_date, defect_rate)
        if rows == 0:
            part = part.iloc[:0]
        if start:  # keep policy and agent numbers unique across chunks
            tag = str(start // CHUNK)
            part["保单号"] = part["保单号"].str.replace(r"^P(\d{4})", rf"P\g<1>{tag}-", regex=True)
            part["业务员代码"] = part["业务员代码"] + "-" + tag
            agents["业务员代码"] = agents["业务员代码"] + "-" + tag
        yield part, agents


def make_sample(rows: int, seed: int, defect_rate: float = 0.05,
                business_date: dt.date = dt.date(2026, 11, 20)) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = list(sample_chunks(rows, seed, defect_rate, business_date))
    return (pd.concat([p for p, _ in parts], ignore_index=True),
            pd.concat([a for _, a in parts], ignore_index=True).drop_duplicates("业务员代码"))


def write_sample(rows: int, seed: int, out: str, defect_rate: float = 0.05, encoding: str = "utf-8",
                 business_date: dt.date = dt.date(2026, 11, 20), agents_out: str | None = None,
                 after: list[str] | None = None, shares: dict | None = None, complaints_out: str | None = None) -> dict:
    """Write a first night's extract, or with `after` (earlier extracts) a later night's one
    (pipeline.sample.later; `shares` overrides its SHARES). Returns the counts written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".parquet"):
        raise InputError(f"--out {out}: the file name must end in .csv, .xlsx or .parquet")
    if suffix == ".xlsx" and rows > 200_000:
        raise InputError(f"--out {out}: XLSX samples are capped at 200000 rows; use .csv or .parquet")
    stats: dict = {}
    if after:
        from pipeline.sample.later import SHARES, later_chunks, read_earlier

        earlier = read_earlier(list(after))  # read before the output is created: --out may be an --after file

        def chunks():
            return later_chunks(rows, seed, earlier, business_date, defect_rate, stats=stats,
                                **{**SHARES, **(shares or {})})
    else:
        def chunks():
            return sample_chunks(rows, seed, defect_rate, business_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        parts = list(chunks())
        frame = pd.concat([p for p, _ in parts], ignore_index=True)
        frame.to_excel(path, index=False, engine="openpyxl")
        written, rosters = len(frame), [a for _, a in parts]
    else:
        written, rosters, parquet = 0, [], None
        with path.open("wb") as fh:
            for i, (part, agents) in enumerate(chunks()):
                rosters.append(agents)
                written += len(part)
                if suffix == ".parquet":
                    table = pa.Table.from_pandas(part, preserve_index=False)
                    parquet = parquet or pq.ParquetWriter(fh, table.schema)
                    parquet.write_table(table)
                elif encoding in ("utf-8", "utf-8-sig"):
                    if i == 0:
                        fh.write(part.iloc[:0].to_csv(index=False).encode(encoding))  # plain header line
                    pacsv.write_csv(pa.Table.from_pandas(part, preserve_index=False), fh,
                                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
                else:
                    try:
                        fh.write(part.to_csv(index=False, header=i == 0).encode(encoding))
                    except UnicodeEncodeError as exc:
                        raise InputError(f"--encoding {encoding} cannot hold a value of an --after extract "
                                         f"(character {exc.object[exc.start]!r}); use utf-8") from None
            if parquet:
                parquet.close()
    roster = pd.concat(rosters, ignore_index=True).drop_duplicates("业务员代码")
    if agents_out:
        Path(agents_out).parent.mkdir(parents=True, exist_ok=True)
        roster.to_csv(agents_out, index=False, encoding="utf-8")
    if complaints_out:
        Path(complaints_out).parent.mkdir(parents=True, exist_ok=True)
        complaint_rows(roster["业务员代码"], seed, business_date).to_csv(complaints_out, index=False, encoding="utf-8")
    return {"rows": written, **stats}


COMPLAINT_TYPES = ["销售误导", "服务态度", "理赔时效", "销售误导"]  # 销售误导 twice: the kind that is met most


def complaint_rows(agents: pd.Series, seed: int, business_date: dt.date) -> pd.DataFrame:
    """A complaints file (SPEC 9) about these agents: about one agent in five has complaints in the
    year before `business_date`, some substantiated, of several types, so some agents reach the
    re-check threshold and some do not. Drawn from a generator of its own (the extract's stays)."""
    rng = np.random.default_rng(zlib.crc32(f"complaints|{seed}".encode("utf-8")))
    codes = agents.to_numpy()
    who = codes[rng.random(len(codes)) < 0.2] if len(codes) else codes
    rows: list[dict] = []
    for code in who:
        for _ in range(int(rng.integers(1, 5))):
            day = business_date - dt.timedelta(days=int(rng.integers(1, 400)))
            rows.append({"投诉编号": f"TS{business_date:%Y%m}{len(rows) + 1:05d}", "业务员代码": code,
                         "投诉日期": day.isoformat(), "投诉类型": COMPLAINT_TYPES[int(rng.integers(0, len(COMPLAINT_TYPES)))],
                         "是否查实": "是" if rng.random() < 0.7 else "否"})
    return pd.DataFrame(rows, columns=["投诉编号", "业务员代码", "投诉日期", "投诉类型", "是否查实"])
