"""`custdq sample --after`: the extract of a later night against earlier extracts.

A later night holds three kinds of rows, drawn from one seed and the business date:

- new policies, generated as for a first night (same columns, formats and injected defects),
  numbered `P<business date><7+ digits>` after the highest earlier number with that prefix, so
  no two nights' new numbers collide even when an earlier night is not given;
- among them a `recurring` share whose applicant is an earlier customer, copied exactly (name,
  sex, birth date, identity document, address, phone, account and holder); half of them also
  keep that earlier policy's insured and relation. Donors are earlier applicants without a
  detectable defect whose phone and account no other earlier customer holds, so the contact
  index links the new policy to the same customer, never as a shared-contact clue;
- a `resend` share of the night's rows that are earlier policies sent again (the latest
  version, the last of the `--after` files wins): a `corrected` share of them picked among
  earlier policies with a defect this module can see and re-sent with every such defect fixed,
  a `changed` share re-sent with a new phone (half) or a new bank account (half), the rest
  byte for byte as before.

Earlier extracts are read with pipeline.ingest (any format custdq reads; values stay text).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from checks.arrays import isin_text
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline import settings
from pipeline.errors import InputError
from pipeline.ingest.clean import clean_text
from pipeline.rows.normalise import parse_sex
from pipeline.sample import CHUNK, ID_WEIGHTS, CHECK_CHARS, sample_frame, luhn_cards, people

SHARES = {"recurring": 0.1, "resend": 0.05, "changed": 0.3, "corrected": 0.5}
APPLICANT = ["applicant_name", "applicant_sex", "applicant_birth_date", "applicant_id_type", "applicant_id_no",
             "applicant_address", "applicant_phone", "bank_account", "bank_account_holder"]
INSURED = ["insured_name", "insured_sex", "insured_birth_date", "insured_id_type", "insured_id_no",
           "insured_phone", "relation"]
# a correction may touch these columns of a re-sent policy; a change only the phone or the account
CORRECTABLE = ["applicant_id_no", "applicant_sex", "applicant_birth_date", "applicant_id_type", "applicant_phone",
               "applicant_address", "bank_account", "insured_birth_date", "relation"]


def read_earlier(paths: list[str]) -> pd.DataFrame:
    """Earlier extracts (canonical columns, text), the latest version of each policy."""
    from pipeline.ingest import read_extract

    frame = read_extract(list(paths), alias_map(EXTRACT_COLUMNS)).frame
    frame = frame.drop(columns=["_file", "_line"])
    frame = frame.where(frame != "")  # an empty CSV cell is missing, as in a workbook or Parquet file
    return frame[frame["policy_no"].notna()].drop_duplicates("policy_no", keep="last").reset_index(drop=True)


def numbering(earlier_numbers: pd.Series, business_date: dt.date, rows: int) -> tuple[str, int, int]:
    """(prefix, last number used, digits) for tonight's new policy numbers."""
    prefix = "P" + business_date.strftime("%Y%m%d")
    tail = earlier_numbers[earlier_numbers.str.startswith(prefix, na=False)].str[len(prefix):]
    tail = tail[tail.str.fullmatch(r"[0-9]{1,15}", na=False)]
    last = int(tail.astype("int64").max()) if len(tail) else 0
    return prefix, last, max(7, len(str(last + rows)))


def _check_chars(body17: pd.Series) -> np.ndarray:
    body = body17.to_numpy(dtype=np.int64)
    digits = (body[:, None] // 10 ** np.arange(16, -1, -1, dtype=np.int64)) % 10
    return CHECK_CHARS[(digits * ID_WEIGHTS).sum(axis=1) % 11]


def _national(phone: pd.Series) -> pd.Series:
    digits = phone.str.replace(r"[^0-9]", "", regex=True)
    return digits.str.replace(r"^(?:0086|86)(?=1[0-9]{10}$)", "", regex=True).mask(digits == "")


def _ymd(values: pd.Series) -> np.ndarray:
    """Date texts (YYYY-MM-DD, YYYY/M/D, YYYYMMDD, YYYY年M月D日) -> YYYYMMDD integers, -1 if unreadable."""
    parts = pc.extract_regex(pa.array(values.astype("str").array, type=pa.string()),
                             r"^(?P<y>[0-9]{4})[-/.年]?(?P<m>[0-9]{1,2})[-/.月]?(?P<d>[0-9]{1,2})日?$")
    y, m, d = (pc.cast(pc.struct_field(parts, k), pa.int64()).to_numpy(zero_copy_only=False) for k in "ymd")
    return np.nan_to_num(y * 10000 + m * 100 + d, nan=-1).astype(np.int64)


def _person(e: pd.DataFrame, role: str, placeholders: set[str]) -> pd.DataFrame:
    """What can be seen of a role's identity: the fixed number, its birth date and sex, flaws."""
    raw = e[f"{role}_id_no"]
    is18 = raw.str.fullmatch(r"[0-9]{17}[0-9X]", na=False)
    is15 = raw.str.fullmatch(r"[0-9]{15}", na=False)
    body = raw.str[:17].where(is18, raw.str[:6] + "19" + raw.str[6:15]).where(is18 | is15, "0" * 17)
    fixed = (body + pd.Series(_check_chars(body), index=e.index, dtype="str")).where(is18 | is15)
    born = pd.to_datetime(fixed.str[6:14], format="%Y%m%d", errors="coerce")
    sex = np.where(fixed.str[16].fillna("0").astype(int) % 2 == 1, "M", "F")
    usable = (is18 | is15) & born.notna()
    born_ymd = born.dt.strftime("%Y%m%d").fillna("0").astype("int64").to_numpy()
    return pd.DataFrame({
        "id": fixed, "usable": usable, "wrong_check": is18 & (raw != fixed), "legacy": is15,
        "birth_iso": born.dt.strftime("%Y-%m-%d"), "sex_text": np.where(sex == "M", "男", "女"),
        "sex_bad": usable & (parse_sex(e[f"{role}_sex"].astype("str")) != sex).fillna(True).astype(bool),
        "birth_bad": usable & (_ymd(e[f"{role}_birth_date"]) != born_ymd),
        "type_missing": clean_text(e[f"{role}_id_type"], placeholders).isna(),
        "name_missing": clean_text(e[f"{role}_name"], placeholders).isna(),
        "birth_missing": clean_text(e[f"{role}_birth_date"], placeholders).isna(),
        "phone": _national(e[f"{role}_phone"]),
    })


def flaws(e: pd.DataFrame) -> dict[str, pd.Series]:
    """Boolean masks over the earlier rows: each defect this module can correct, plus `clean`
    (an applicant, and a non-self insured, fit to recur)."""
    cfg = settings.load()
    placeholders = {p.upper() for p in cfg.placeholders}
    fillers = set(cfg.phone_placeholders.numbers)
    is_self = e["relation"].isin(list(cfg.self_relation)).fillna(False).astype(bool)
    app, ins = _person(e, "applicant", placeholders), _person(e, "insured", placeholders)
    phone = app["phone"]
    phone_bad = (~phone.str.fullmatch(r"1[3-9][0-9]{9}", na=False) | isin_text(phone, fillers)
                 | phone.str.fullmatch(r"([0-9])\1+", na=False))
    account = e["bank_account"].str.replace(r"[ -]", "", regex=True)
    account_bad = ~account.str.fullmatch(r"[0-9]{8,30}", na=False)
    # phones and accounts held by more than one earlier customer (id number, else the record)
    who_app = app["id"].fillna("R" + e["policy_no"] + "a")
    who_ins = ins["id"].fillna("R" + e["policy_no"] + "i").where(~is_self, who_app)
    held = pd.DataFrame({"v": pd.concat([phone, ins["phone"], "B" + account]),
                         "who": pd.concat([who_app, who_ins, who_app])}).dropna()
    owners = held.drop_duplicates().groupby("v")["who"].size()
    shared = set(owners.index[owners > 1])
    phone_shared = isin_text(phone, shared) & ~phone_bad
    account_shared = isin_text("B" + account, shared) & ~account_bad
    no_insured = ins["name_missing"] & e["insured_id_no"].isna() & ins["birth_missing"]
    out = {
        "id_fix": app["wrong_check"] | app["legacy"], "sex_bad": app["sex_bad"], "birth_bad": app["birth_bad"],
        "type_missing": app["type_missing"] & app["usable"], "phone_bad": phone_bad | phone_shared,
        "address_bad": clean_text(e["applicant_address"], placeholders).isna(),
        "account_bad": account_bad | account_shared,
        "insured_birth": ~is_self & ins["birth_missing"] & ins["usable"] & ~ins["name_missing"],
        "relation_self": ~is_self & no_insured,  # a 本人 policy whose relation was lost
    }
    out = {k: pd.Series(np.asarray(v, dtype=bool), index=e.index) for k, v in out.items()}
    fixable = np.logical_or.reduce([v.to_numpy() for v in out.values()])
    ins_phone = ins["phone"]
    ins_ok = is_self | (ins["usable"] & ~ins["wrong_check"] & ~ins["legacy"] & ~ins["sex_bad"] & ~ins["birth_bad"]
                        & ~ins["name_missing"] & (ins_phone.isna() | ~isin_text(ins_phone, shared)))
    clean = ~pd.Series(fixable, index=e.index) & app["usable"] & ~app["name_missing"]
    out["fixable"] = pd.Series(fixable, index=e.index)
    out["clean"] = clean
    out["insured_clean"] = clean & ins_ok.fillna(False).astype(bool)
    out["_fixed_id"], out["_birth"], out["_sex"] = app["id"], app["birth_iso"], app["sex_text"]
    out["_insured_birth"] = ins["birth_iso"]
    return out


def _fresh(n: int, rng: np.random.Generator, today: dt.date) -> pd.DataFrame:
    p = people(n, rng, today, 20, 70)
    return pd.DataFrame({"phone": p["mobile"], "address": p["address"], "account": luhn_cards("622202", 19, n, rng)})


def _resent(e: pd.DataFrame, picks: np.ndarray, kind: np.ndarray, marks: dict, rng, today) -> pd.DataFrame:
    """Earlier rows `picks`, corrected (kind 1), with a new phone (2) or account (3), or as they were (0)."""
    r = e.iloc[picks].reset_index(drop=True).copy()
    m = {k: v.iloc[picks].reset_index(drop=True) for k, v in marks.items()}
    fresh = _fresh(len(r), rng, today)
    fix = kind == 1

    def put(column: str, where, values) -> None:
        where = np.asarray(where, dtype=bool)
        if where.any():
            r.loc[where, column] = pd.Series(values).reset_index(drop=True)[where].to_numpy()

    put("applicant_id_no", fix & m["id_fix"], m["_fixed_id"])
    put("applicant_sex", fix & m["sex_bad"], m["_sex"])
    put("applicant_birth_date", fix & m["birth_bad"], m["_birth"])
    put("applicant_id_type", fix & m["type_missing"], pd.Series(["身份证"] * len(r)))
    put("applicant_phone", (fix & m["phone_bad"]) | (kind == 2), fresh["phone"])
    put("applicant_address", fix & m["address_bad"], fresh["address"])
    put("bank_account", (fix & m["account_bad"]) | (kind == 3), fresh["account"])
    put("insured_birth_date", fix & m["insured_birth"], m["_insured_birth"])
    put("relation", fix & m["relation_self"], pd.Series(["本人"] * len(r)))
    return r


def later_chunks(rows: int, seed: int, earlier: pd.DataFrame, business_date: dt.date, defect_rate: float = 0.05,
                 recurring: float = 0.1, resend: float = 0.05, changed: float = 0.3, corrected: float = 0.5,
                 stats: dict | None = None):
    """Yield (extract chunk, roster chunk) of a later night: new policies, recurring customers and
    re-sent earlier policies (see the module docstring); `stats` receives the counts."""
    rng = np.random.default_rng([seed, business_date.toordinal()])  # another night, another stream
    if not len(earlier):
        raise InputError("--after: the earlier extracts hold no policy")
    marks = flaws(earlier)
    prefix, last, width = numbering(earlier["policy_no"], business_date, rows)
    # re-sent policies: corrections first (among fixable ones), then changed and unchanged ones
    n_resend = min(int(round(rows * resend)), len(earlier))
    fixable = np.flatnonzero(marks["fixable"].to_numpy())
    n_fix = min(int(round(n_resend * corrected)), len(fixable))
    fixed = rng.choice(fixable, n_fix, replace=False)
    others = np.setdiff1d(np.arange(len(earlier)), fixed)
    plain = rng.choice(others, n_resend - n_fix, replace=False)
    n_change = min(int(round(n_resend * changed)), len(plain))
    kind = np.concatenate([np.ones(n_fix, int), np.where(np.arange(len(plain)) < n_change,
                                                        2 + (np.arange(len(plain)) % 2), 0)])
    order = rng.permutation(n_resend)
    picks, kind = np.concatenate([fixed, plain])[order], kind[order]
    donors = np.flatnonzero(marks["clean"].to_numpy())
    insured_ok = marks["insured_clean"].to_numpy()
    tally = {"new": 0, "recurring": 0, "resent": n_resend, "corrected": n_fix,
             "changed_phone": int((kind == 2).sum()), "changed_account": int((kind == 3).sum())}
    for start in range(0, max(rows, 1), CHUNK):
        size = max(0, min(CHUNK, rows - start))
        a, b = n_resend * start // max(rows, 1), n_resend * (start + size) // max(rows, 1)
        n_new = size - (b - a)
        f, agents = sample_frame(max(1, n_new), rng, business_date, defect_rate)
        f = f.iloc[:n_new].copy()
        header = {alias_map(EXTRACT_COLUMNS)[h]: h for h in f.columns}
        if start:
            tag = "-" + str(start // CHUNK)
            f["业务员代码"], agents["业务员代码"] = f["业务员代码"] + tag, agents["业务员代码"] + tag
        seq = pd.to_numeric(f["保单号"].str[5:], errors="coerce") + last + start
        f["保单号"] = (prefix + seq.astype("Int64").astype("str").str.zfill(width)).where(f["保单号"].notna())
        _recur(f, earlier, header, donors, insured_ok, recurring, rng, tally)
        part = _resent(earlier, picks[a:b], kind[a:b], marks, rng, business_date)
        part = part.rename(columns=header)[list(f.columns)]
        f = pd.concat([f, part], ignore_index=True)
        f = f.iloc[rng.permutation(len(f))].reset_index(drop=True)
        tally["new"] += n_new
        yield f, agents
    if stats is not None:
        stats.update(tally)


def _recur(f: pd.DataFrame, e: pd.DataFrame, header: dict, donors: np.ndarray, insured_ok: np.ndarray,
           share: float, rng: np.random.Generator, tally: dict) -> None:
    """Give a `share` of the new rows an earlier customer as applicant (half: also the insured)."""
    hit = np.flatnonzero(rng.random(len(f)) < share) if len(donors) else np.array([], int)
    if not len(hit):
        return
    d = donors[rng.integers(0, len(donors), len(hit))]
    both = insured_ok[d] & (rng.random(len(hit)) < 0.5)
    for c in APPLICANT:
        f.loc[hit, header[c]] = e[c].iloc[d].to_numpy()
    for c in INSURED:
        f.loc[hit[both], header[c]] = e[c].iloc[d[both]].to_numpy()
    # a new 本人 policy of the earlier customer: its filled insured fields are that customer too
    alone = hit[~both]
    is_self = (f[header["relation"]].iloc[alone].eq("本人").to_numpy()
               & f[header["insured_name"]].iloc[alone].notna().to_numpy())
    rows, src = alone[is_self], d[~both][is_self]
    for field in ("name", "sex", "birth_date", "id_type", "id_no", "phone"):
        f.loc[rows, header[f"insured_{field}"]] = e[f"applicant_{field}"].iloc[src].to_numpy()
    tally["recurring"] += len(hit)
