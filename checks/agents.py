"""PHONE_IS_AGENT (SPEC 3): a customer's phone is the phone of an agent on the roster who is not
that customer. The customer is the agent when their identity numbers agree (15-digit numbers
upgraded), or, where the roster has no identity number for the agent, when the names agree.
Without a roster the rule is not applicable and says so in the manifest.
"""

from __future__ import annotations

import pandas as pd

from checks import findings, phones
from checks.arrays import isin_text
from checks.findings import NotApplicable, RuleContext
from checks.identity import analysis
from checks.masking import mask_name, mask_phone
from checks.ric_vector import analyse


def _roster(ctx: RuleContext) -> pd.DataFrame:
    key = ("roster",)
    if key not in ctx.night:
        agents = ctx.agents
        if agents is None:
            raise RuntimeError("phone_is_agent is not applicable without a roster (bug)")
        numbers = phones.normalise(agents["agent_phone"])
        ids = analyse(agents["agent_id_no"], ctx.business_date)["id18"]
        ctx.night[key] = pd.DataFrame({
            "e164": numbers["e164"].where(numbers["valid"]), "agent_code": agents["agent_code"],
            "agent_name": agents["agent_name"].str.replace(r"\s", "", regex=True),
            "agent_id18": ids.fillna(agents["agent_id_no"]),
        }).dropna(subset=["e164"]).drop_duplicates(["e164", "agent_code"])
    return ctx.night[key]


def phone_is_agent(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    if ctx.agents is None:
        raise NotApplicable("no agent roster given (--agents)")
    roster = _roster(ctx)
    parts = []
    for role in ("applicant", "insured"):
        column = f"{role}_phone"
        phone = frame[f"{column}_e164"].where(frame[f"{column}_valid"])
        hits = phone[isin_text(phone, roster["e164"])]
        if hits.empty:
            continue
        pairs = hits.rename("e164").reset_index().merge(roster, on="e164")
        index_name = pairs.columns[0]
        ids = analysis(frame, ctx, role)["id18"]
        customer_id = ids.reindex(pairs[index_name]).to_numpy()
        customer_name = frame[f"{role}_name"].str.replace(r"\s", "", regex=True).reindex(pairs[index_name]).to_numpy()
        agent_has_id = pairs["agent_id18"].notna().to_numpy()
        same = ((customer_id == pairs["agent_id18"].to_numpy()) & agent_has_id) | (
            ~agent_has_id & (customer_name == pairs["agent_name"].to_numpy()))
        pairs = pairs[~same]
        if pairs.empty:
            continue
        listed = ("业务员" + pairs["agent_code"] + " " + mask_name(pairs["agent_name"]).fillna("")).groupby(
            pairs[index_name]).agg("、".join)
        mask = pd.Series(frame.index.isin(listed.index), index=frame.index)
        evidence = (mask_phone(frame.loc[mask, f"{column}_national"]) + " 属于 " + listed).reindex(frame.index)
        parts.append(findings.make(mask, role, column, f"{ctx.labels[column]}为业务员的电话", evidence))
    return findings.concat(parts)
