"""Wires each rule code of the catalogue to the vectorised function that evaluates it.

An evaluator takes the in-scope normalised frame and a RuleContext and returns rows of the
findings table (checks.findings.FINDING_COLUMNS). Codes in the catalogue without an evaluator
here are reported as not implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from checks import agents, completeness, contacts, duplicates, identity
from checks.catalogue import RULES
from checks.findings import RuleContext

Evaluator = Callable[[pd.DataFrame, RuleContext], pd.DataFrame]

EVALUATORS: dict[str, Evaluator] = {
    "MISSING_FIELD": completeness.missing_field,
    "FIELD_INVALID": completeness.field_invalid,
    "DUPLICATE_POLICY": duplicates.duplicate_policy,
    "ID_FORMAT": identity.id_format,
    "ID_CORRUPTED": identity.id_corrupted,
    "ID_CHECKSUM": identity.id_checksum,
    "ID_BIRTH_INVALID": identity.id_birth_invalid,
    "ID_REGION_UNKNOWN": identity.id_region_unknown,
    "ID_LEGACY_15": identity.id_legacy_15,
    "ID_SEX_MISMATCH": identity.id_sex_mismatch,
    "ID_BIRTH_MISMATCH": identity.id_birth_mismatch,
    "PHONE_INVALID": contacts.phone_invalid,
    "PHONE_PLACEHOLDER": contacts.phone_placeholder,
    "BANK_ACCOUNT_INVALID": contacts.bank_account_invalid,
    "BANK_CARD_LUHN": contacts.bank_card_luhn,
    "BANK_HOLDER_MISMATCH": contacts.bank_holder_mismatch,
    "PHONE_IS_AGENT": agents.phone_is_agent,
}

assert set(EVALUATORS) <= set(RULES), "every evaluator needs a catalogue entry"
