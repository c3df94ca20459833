"""Customer identity (SPEC 2.4): which records belong to the same natural person.

A record's identity text is, in order of preference:

    D|<kind>|<number>   a usable identity number with its document kind. 身份证/居民身份证/01 and
                        the other citizen-number documents (临时身份证, 户口簿) are one kind `ID`;
                        a 15-digit number is replaced by its 18-digit upgrade; residence permits
                        `RP`, the foreign permanent resident card `FP`; any other document kind is
                        its normalised type text. A citizen number damaged by a spreadsheet or not
                        shaped like one is not usable; one with a wrong check character is (the
                        same mistyped number on two policies is the same person's).
    N|<name>|<birth>|<sex>  otherwise name + birth date + sex, when all three are present
                        (every record also keeps this as its `person` text, so that a record
                        without a usable number meets the records of the same person that have
                        one: checks.shared.resolve);
    R|<policy>|<role>   otherwise the record stands for itself (it can still share a phone
                        with another customer, but is never merged with anyone).

The insured of a policy whose `relation` is 本人 is the applicant. These texts are personal
data: they only ever leave memory as keyed hashes (pipeline.store.hashkey).
"""

from __future__ import annotations

import pandas as pd

from checks import identity
from checks.findings import RuleContext


def _kinds(frame: pd.DataFrame, ctx: RuleContext, role: str) -> pd.Series:
    id_type = frame[f"{role}_id_type"].str.upper()
    types = {name: {str(v).upper() for v in ctx.params[key]}
             for name, key in (("ID", "id_card_types"), ("RP", "residence_permit_types"),
                               ("FP", "foreign_permanent_types"))}
    kind = ("T:" + id_type).astype("str")
    for name, values in types.items():
        kind = kind.mask(id_type.isin(values).fillna(False), name)
    # an untyped number with the exact shape of a citizen number is read as one (as the ID rules do)
    untyped_card = id_type.isna() & frame[f"{role}_id_no"].str.fullmatch(r"[0-9]{17}[0-9X]|[0-9]{15}", na=False)
    return kind.mask(untyped_card, "ID")


def identity_text(frame: pd.DataFrame, ctx: RuleContext, role: str) -> tuple[pd.Series, pd.Series]:
    """The identity text and the person text of each record of `role` (see the module docstring)."""
    kind = _kinds(frame, ctx, role)
    number = frame[f"{role}_id_no"]
    analysis = identity.analysis(frame, ctx, role)
    # citizen numbers and permits in their checked 18-character form; an older foreign card as written
    checked = kind.isin(["ID", "RP"]) | ((kind == "FP") & analysis["applies"])
    number = number.where(~checked, analysis["id18"])
    by_document = ("D|" + kind + "|" + number).where(kind.notna() & number.notna())
    name = frame[f"{role}_name"]
    spaced = name.str.contains(" ", regex=False, na=False)  # rare: only those rows pay for the replace
    if spaced.any():
        name = name.where(~spaced, name[spaced].str.replace(r"\s+", "", regex=True))
    birth = frame[f"{role}_birth_date_dt"].dt.strftime("%Y-%m-%d")
    by_person = ("N|" + name + "|" + birth + "|" + frame[f"{role}_sex_code"]).astype("str")
    by_record = ("R|" + frame["policy_no"] + "|" + role).astype("str")
    return by_document.fillna(by_person).fillna(by_record).astype("str"), by_person


def customers(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    """Identity texts of the applicant and the insured of each policy (columns `applicant`,
    `insured`) and their person texts (`applicant_person`, `insured_person`); the insured of a
    本人 policy is the applicant."""
    key = ("customers", id(frame))
    if key not in ctx.cache:
        applicant, applicant_person = identity_text(frame, ctx, "applicant")
        insured, insured_person = identity_text(frame, ctx, "insured")
        self_ = frame["is_self"]
        ctx.cache[key] = pd.DataFrame({
            "applicant": applicant, "insured": insured.mask(self_, applicant),
            "applicant_person": applicant_person, "insured_person": insured_person.mask(self_, applicant_person),
        }, index=frame.index)
    return ctx.cache[key]
