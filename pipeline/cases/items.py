"""An item (SPEC 5 `items.csv`): its columns, and the id that makes it the same item on a later night.

`item_id` is a hash of what makes a finding the same finding on a later night: rule, policy,
role and field. It does not depend on row order, file name or the night, so re-running a
night, or meeting the same finding again tomorrow, gives the same id.

A leaf module: the night builds items (pipeline.night.items), the case store keeps them
(pipeline.cases), the outputs and the web app show them; all take their columns from here.
"""

from __future__ import annotations

import hashlib
import re

import pandas as pd

ITEM_COLUMNS = [
    "item_id", "business_date", "policy_no", "role", "rule_code", "severity", "category", "field",
    "detail", "evidence", "branch", "channel", "agent_code", "first_seen", "list_due", "channel_due",
    "cooling_off_end", "due_date", "provisional", "status", "last_seen", "source_file", "source_line",
    "cluster_id", "cluster_size",
]
# beside the item columns, kept in the case store only: what a confirmation of legitimacy
# suppresses (pipeline.cases.night); `value_text` becomes `value_key` (a keyed hash) before storing
KEY_COLUMNS = ["value_text", "value_key", "customer_key", "group_keys"]
DATE_FIELDS = ["business_date", "first_seen", "last_seen", "list_due", "channel_due", "cooling_off_end", "due_date"]

# an item id as item_ids makes it: kept readable where text is masked (checks.masking.mask_text)
ITEM_ID = re.compile(r"\bDQ[0-9A-F]{16}\b")


def item_ids(table: pd.DataFrame) -> pd.Series:
    keys = table["rule_code"] + "|" + table["policy_no"] + "|" + table["role"] + "|" + table["field"]
    return keys.map(lambda k: "DQ" + hashlib.sha256(k.encode("utf-8")).hexdigest()[:16].upper()).astype("str")
