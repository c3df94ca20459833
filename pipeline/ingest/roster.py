"""The agent roster (SPEC 2.2, `--agents`): read like an extract, normalised like one.

The roster feeds PHONE_IS_AGENT (a customer's phone is an agent's). It needs `agent_code` and
`agent_phone`; a row without an agent code cannot be matched and is counted, not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.ingest.columns import AGENT_COLUMNS, alias_map
from pipeline.ingest import ROSTER, read_extract
from pipeline.ingest.clean import clean_text
from pipeline.settings import Settings


@dataclass
class Roster:
    agents: pd.DataFrame  # canonical roster columns, normalised text, one row per usable agent row
    manifest: dict


def load_roster(path: str, cfg: Settings) -> Roster:
    table = read_extract([path], alias_map(AGENT_COLUMNS, cfg.aliases), kind=ROSTER)
    placeholders = {p.upper() for p in cfg.placeholders}
    agents = pd.DataFrame({c.name: clean_text(table.frame[c.name], placeholders) for c in AGENT_COLUMNS})
    agents["agent_id_no"] = agents["agent_id_no"].str.replace(r"\s+", "", regex=True).str.upper()
    usable = agents["agent_code"].notna()
    info = table.inputs[0].to_dict() | {
        "role": "agent roster",
        "rows_without_agent_code": int((~usable).sum()),
        "rows_unreadable": len(table.quarantine),
        "duplicate_agent_codes": int(agents.loc[usable, "agent_code"].duplicated().sum()),
        "optional_columns_absent": table.absent_optional,
    }
    return Roster(agents[usable].reset_index(drop=True), info)
