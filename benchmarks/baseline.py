"""The straightforward implementation issue 7 measures custdq against (python -m benchmarks.baseline
EXTRACT OUT_CSV): what a first version of the nightly job would be.

pandas' C reader with every column as text, the checks written per row (key fields present, the
GB 11643 check character, embedded birth date and sex against the declared ones, phones through
phonenumbers one at a time, bank accounts shape and Luhn), and the shared phones and accounts
found with a pandas group-by over tonight's rows (a value held by two or more identity numbers).
It writes one CSV of findings. No store, no worklists, no deadlines: it does less than custdq,
so a ratio against it understates custdq's speed.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys

import pandas as pd
import phonenumbers

from pipeline import settings
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map

KEY = ["policy_no", "applicant_name", "applicant_id_no", "applicant_phone", "insured_name", "insured_id_no",
       "branch", "channel", "agent_code"]
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_problems(number: str, sex: str, birth: str) -> list[str]:
    n = number.strip().upper()
    if len(n) != 18 or not n[:17].isdigit():
        return ["ID_FORMAT"]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(n[:17], WEIGHTS)) % 11]
    if check != n[17]:
        return ["ID_CHECKSUM"]
    try:
        born = dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return ["ID_BIRTH_INVALID"]
    found = []
    if sex in ("男", "女") and ("男" if int(n[16]) % 2 else "女") != sex:
        found.append("ID_SEX_MISMATCH")
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"):
        try:
            if dt.datetime.strptime(birth.strip(), fmt).date() != born:
                found.append("ID_BIRTH_MISMATCH")
            break
        except ValueError:
            continue
    return found


def phone_ok(text: str) -> tuple[str | None, bool]:
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), phonenumbers.is_valid_number(number)


def luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def run(extract: str, out_csv: str) -> int:
    names = alias_map(EXTRACT_COLUMNS)
    frame = pd.read_csv(extract, dtype=str, keep_default_na=False, engine="c").rename(columns=names)
    for c in EXTRACT_COLUMNS:  # the optional columns an extract may lack (SPEC 2.1): empty, as custdq reads them
        if c.optional and c.name not in frame.columns:
            frame[c.name] = ""
    findings: list[tuple[str, str, str]] = []
    phones_seen = []
    selves = set(settings.load().self_relation)
    for r in frame.itertuples(index=False):
        self_insured = r.relation.strip() in selves
        for field in KEY:
            if self_insured and field.startswith("insured_"):
                continue
            if not getattr(r, field).strip():
                findings.append((r.policy_no, "MISSING_FIELD", field))
        for role in ("applicant", "insured"):
            number = getattr(r, f"{role}_id_no")
            if number:
                for code in id_problems(number, getattr(r, f"{role}_sex"), getattr(r, f"{role}_birth_date")):
                    findings.append((r.policy_no, code, f"{role}_id_no"))
            phone = getattr(r, f"{role}_phone")
            if phone:
                e164, ok = phone_ok(phone)
                if not ok:
                    findings.append((r.policy_no, "PHONE_INVALID", f"{role}_phone"))
                elif role == "applicant":
                    phones_seen.append((e164, r.applicant_id_no.strip().upper(), r.policy_no))
        account = r.bank_account.replace(" ", "").replace("-", "")
        if account:
            if not (account.isdigit() and 8 <= len(account) <= 30):
                findings.append((r.policy_no, "BANK_ACCOUNT_INVALID", "bank_account"))
            elif 16 <= len(account) <= 19 and not luhn(account):
                findings.append((r.policy_no, "BANK_CARD_LUHN", "bank_account"))
    phones = pd.DataFrame(phones_seen, columns=["value", "customer", "policy_no"])
    accounts = pd.DataFrame({"value": frame["bank_account"].str.replace(r"[\s-]", "", regex=True),
                             "customer": frame["applicant_id_no"].str.strip().str.upper(),
                             "policy_no": frame["policy_no"]})
    for code, table in (("PHONE_SHARED", phones), ("BANK_SHARED", accounts[accounts["value"] != ""])):
        holders = table.groupby("value")["customer"].nunique()
        shared = table[table["value"].isin(holders[holders > 1].index)]
        findings += [(p, code, "shared") for p in shared["policy_no"]]
    with open(out_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["policy_no", "rule_code", "field"])
        writer.writerows(findings)
    return len(findings)


if __name__ == "__main__":
    print(run(sys.argv[1], sys.argv[2]))
